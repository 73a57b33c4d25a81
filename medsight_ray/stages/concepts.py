"""Stage 1 of the concept model: learn concepts and where they are.

Trains ``backbone`` (at ``optim.backbone_lr_scale``) and ``concept_head`` (at
``optim.head_lr_scale``) with α·BCE(pos_weight) + β·bbox localisation. Validation:
concept ROC-AUC (macro over concepts with both labels in the split, and per concept),
mAP, F1, and CAM localisation on the boxes (pointing game, energy inside vs outside).
Primary metric: ``auc_macro``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import nn

from medsight_ray.data.schema import DatasetInfo
from medsight_ray.fit.config import OptimConfig, StageConfig
from medsight_ray.fit.stage import Context, Stage, per_image_loss, train_spread, validation_loss
from medsight_ray.losses.concept import ConceptLossConfig, concept_loss, pos_weight_from_counts
from medsight_ray.metrics.classification import multilabel_metrics
from medsight_ray.metrics.localisation import box_statistics, localisation_metrics
from medsight_ray.models.concept import ConceptModel, ConceptModelConfig
from medsight_ray.models.parts import PartsModule
from medsight_ray.stages.registry import register


@dataclass(frozen=True)
class ConceptsConfig(StageConfig):
    """Stage 1 config: the model, the loss, and an lr tuned for it."""

    model: ConceptModelConfig = ConceptModelConfig()
    loss: ConceptLossConfig = ConceptLossConfig()
    optim: OptimConfig = OptimConfig(lr=3e-3, backbone_lr_scale=1.0, head_lr_scale=1.0)


def build_concept_model(cfg: Any, info: DatasetInfo) -> ConceptModel:
    """The concept model all three stages share."""
    return ConceptModel(cfg.model, info.channels, cfg.data.image_size, len(info.concept_names),
                        len(info.target_names))


class ConceptsStage(Stage):
    task, name, order = "concepts", "concepts", 1
    config_cls = ConceptsConfig
    primary_metric = "auc_macro"

    def build_model(self, cfg: ConceptsConfig, info: DatasetInfo) -> PartsModule:
        return build_concept_model(cfg, info)

    def trainable_parts(self, cfg: ConceptsConfig, epoch: int) -> set[str]:
        return {"backbone", "concept_head"}

    def param_groups(self, model: PartsModule, cfg: ConceptsConfig) -> dict[str, list[nn.Parameter]]:
        return {"backbone": model.part_parameters("backbone"), "head": model.part_parameters("concept_head")}

    def prepare(self, ctx: Context) -> None:
        positives = torch.tensor(ctx.stats["concept_positives"])
        ctx.extra["pos_weight"] = pos_weight_from_counts(positives, ctx.stats["rows"],
                                                         ctx.cfg.loss.pos_weight_max).to(ctx.device)

    def train_step(self, model: nn.Module, batch: dict[str, torch.Tensor], ctx: Context) -> dict[str, torch.Tensor]:
        out = model(batch["image"])
        parts = concept_loss(out, batch["concepts"], batch["boxes"], ctx.cfg.loss, ctx.extra["pos_weight"])
        return {**parts, "score_spread": train_spread(torch.sigmoid(out["concept_logits"]))}

    def eval_batch(self, model: nn.Module, batch: dict[str, torch.Tensor], ctx: Context) -> dict[str, np.ndarray]:
        out = model(batch["image"])

        def image_loss(i: slice) -> torch.Tensor:
            own = {"concept_logits": out["concept_logits"][i], "cams": out["cams"][i]}
            return concept_loss(own, batch["concepts"][i], batch["boxes"][i], ctx.cfg.loss,
                                ctx.extra["pos_weight"])["loss"]

        return {
            "scores": torch.sigmoid(out["concept_logits"]).float().cpu().numpy(),
            "labels": batch["concepts"].cpu().numpy(),
            "boxes": box_statistics(out["cams"].float(), batch["boxes"]),
            "loss": per_image_loss(image_loss, len(batch["image"])),
        }

    def epoch_metrics(self, arrays: dict[str, np.ndarray], model: PartsModule, ctx: Context) -> dict[str, Any]:
        names = ctx.info.concept_names
        scores = arrays["scores"].reshape(-1, len(names))
        metrics = multilabel_metrics(scores, arrays["labels"].reshape(-1, len(names)), names)
        metrics.update(localisation_metrics(arrays["boxes"].reshape(-1, 3)))
        metrics.update(validation_loss(arrays["loss"]))
        return metrics


register(ConceptsStage())
