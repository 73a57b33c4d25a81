"""The segmentation stage: encoder–decoder, any loss of the factory, Dice and IoU.

Rows whose mask is unknown (``has_segmentation`` false) are left out of the loss and
the metrics: seed 004 gave them empty masks and the model learned to predict nothing.
Validation: Dice and IoU over the split's pixels, mean per-image Dice, and
``pred_mean`` against ``target_mean`` (the foreground shares predicted and true).
Primary metric: ``dice``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import nn

from medsight_ray.data.schema import DatasetInfo
from medsight_ray.fit.config import OptimConfig, StageConfig
from medsight_ray.fit.stage import Context, Stage, per_image_loss, validation_loss
from medsight_ray.losses.segmentation import LOSSES, SegLossName, build_segmentation_loss
from medsight_ray.metrics.segmentation import confusion_counts, segmentation_metrics
from medsight_ray.models.parts import PartsModule
from medsight_ray.models.segmenter import Segmenter, SegmenterConfig
from medsight_ray.stages.registry import register


@dataclass(frozen=True)
class SegLossConfig:
    """Segmentation loss settings.

    Attributes:
        name: one of bce, dice, focal, iou, tversky, or ``combined`` (the weighted sum
            of the ``*_weight`` terms).
        bce_weight, dice_weight, focal_weight, iou_weight, tversky_weight: weight of
            each term in ``combined``; 0 leaves the term out.
        bce_pos_weight: BCE weight of foreground pixels.
        focal_gamma: focal loss γ.
        focal_alpha: focal loss weight of foreground pixels (α).
        tversky_alpha: Tversky weight of false positives.
        tversky_beta: Tversky weight of false negatives.
    """

    name: SegLossName = "combined"
    bce_weight: float = 0.5
    dice_weight: float = 0.5
    focal_weight: float = 0.0
    iou_weight: float = 0.0
    tversky_weight: float = 0.0
    bce_pos_weight: float = 1.0
    focal_gamma: float = 2.0
    focal_alpha: float = 0.5
    tversky_alpha: float = 0.3
    tversky_beta: float = 0.7


@dataclass(frozen=True)
class SegmentationConfig(StageConfig):
    """Segmentation stage config.

    Attributes:
        threshold: foreground probability at which a pixel counts as foreground.
    """

    model: SegmenterConfig = SegmenterConfig()
    loss: SegLossConfig = SegLossConfig()
    optim: OptimConfig = OptimConfig(lr=3e-3)
    threshold: float = 0.5


def build_loss(cfg: SegLossConfig) -> Any:
    """The configured loss, from :func:`build_segmentation_loss`."""
    options = {"bce": {"pos_weight": cfg.bce_pos_weight}, "focal": {"gamma": cfg.focal_gamma, "alpha": cfg.focal_alpha},
               "tversky": {"alpha": cfg.tversky_alpha, "beta": cfg.tversky_beta}, "dice": {}, "iou": {}}
    if cfg.name != "combined":
        return build_segmentation_loss(cfg.name, **options.get(cfg.name, {}))
    weights = {name: getattr(cfg, f"{name}_weight") for name in LOSSES}
    return build_segmentation_loss("combined", weights=weights, **options)


class SegmentationStage(Stage):
    task, name, order = "segmentation", "segmentation", 1
    config_cls = SegmentationConfig
    primary_metric = "dice"

    def build_model(self, cfg: SegmentationConfig, info: DatasetInfo) -> PartsModule:
        return Segmenter(cfg.model, info.channels, cfg.data.image_size)

    def trainable_parts(self, cfg: SegmentationConfig, epoch: int) -> set[str]:
        return {"backbone", "decoder"}

    def param_groups(self, model: PartsModule, cfg: SegmentationConfig) -> dict[str, list[nn.Parameter]]:
        return {"backbone": model.part_parameters("backbone"), "head": model.part_parameters("decoder")}

    def prepare(self, ctx: Context) -> None:
        ctx.extra["loss"] = build_loss(ctx.cfg.loss)

    def train_step(self, model: nn.Module, batch: dict[str, torch.Tensor], ctx: Context) -> dict[str, torch.Tensor]:
        logits = model(batch["image"])["mask_logits"]
        return {"loss": ctx.extra["loss"](logits, batch["mask"], batch["has_mask"])}

    def eval_batch(self, model: nn.Module, batch: dict[str, torch.Tensor], ctx: Context) -> dict[str, np.ndarray]:
        logits = model(batch["image"])["mask_logits"].float()
        known = batch["has_mask"] > 0.5
        logits_k, mask_k, valid_k = logits[known], batch["mask"][known], batch["has_mask"][known]
        loss = per_image_loss(lambda i: ctx.extra["loss"](logits_k[i], mask_k[i], valid_k[i]), int(known.sum()))
        pred = (torch.sigmoid(logits) >= ctx.cfg.threshold)[known].cpu().numpy()
        return {"counts": confusion_counts(pred, batch["mask"][known].cpu().numpy()).reshape(-1, 4), "loss": loss}

    def epoch_metrics(self, arrays: dict[str, np.ndarray], model: PartsModule, ctx: Context) -> dict[str, Any]:
        metrics = segmentation_metrics(arrays["counts"].reshape(-1, 4))
        metrics.update(validation_loss(arrays["loss"]))
        return metrics


register(SegmentationStage())
