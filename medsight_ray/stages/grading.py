"""The cataract grader's stage: everything seed 003 fought with, as settings.

    loss            CE with label smoothing and clamped class weights, or focal (γ)
    class weights   inverse frequency ^ power, bounded to [min, max], mean 1
                    (:mod:`medsight_ray.losses.class_weights`)
    sampler         class-aware resampling of the training stream, with a per-class
                    fraction of the balanced share (seed 003's IOL fraction 0.33)
    mixup           with probability ``mixup_prob`` per batch, Beta(α, α) mixing
    freeze          backbone frozen for ``freeze_backbone_epochs``, then trained at
                    ``optim.backbone_lr_scale`` × lr
    accumulation    ``fit.accumulate``; k-fold CV: ``kfold`` (run by the driver)

Validation: macro/micro F1, per-class F1, accuracy, macro AUC, confusion matrix and
the predicted-class histogram. Primary metric: ``f1_macro``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from medsight_ray.data.schema import DatasetInfo
from medsight_ray.errors import ConfigError
from medsight_ray.fit.config import FitConfig, OptimConfig, StageConfig
from medsight_ray.fit.stage import Context, Stage, train_spread, validation_loss
from medsight_ray.losses.class_weights import class_weights
from medsight_ray.losses.classification import ClassificationLossName, classification_loss
from medsight_ray.metrics.classification import multiclass_metrics
from medsight_ray.models.grader import Grader, GraderConfig
from medsight_ray.models.parts import PartsModule
from medsight_ray.stages.registry import register


@dataclass(frozen=True)
class GradingLossConfig:
    """Loss settings.

    Attributes:
        name: ``ce`` (cross-entropy) or ``focal`` (γ = ``focal_gamma``).
        label_smoothing: share of each target spread evenly over the classes.
        focal_gamma: focal loss γ; 0 = cross-entropy.
        class_weight_power: class weights are (inverse frequency) ^ power, mean 1; 0 = off.
        class_weight_min: lower clamp of a class weight (seed 003 used 0: no clamp).
        class_weight_max: upper clamp of a class weight.
    """

    name: ClassificationLossName = "ce"
    label_smoothing: float = 0.05
    focal_gamma: float = 2.0
    class_weight_power: float = 1.0
    class_weight_min: float = 0.75
    class_weight_max: float = 1.5


@dataclass(frozen=True)
class SamplerConfig:
    """Class-aware resampling of the training stream.

    Attributes:
        balanced: resample so that classes appear in proportion to ``class_fractions``
            (all 1 = balanced) while the expected epoch size stays the same.
        class_fractions: per-class multiplier of the balanced share, e.g.
            ``[1, 1, 1, 0.33]`` (empty = all 1).
    """

    balanced: bool = False
    class_fractions: tuple[float, ...] = ()


@dataclass(frozen=True)
class GradingConfig(StageConfig):
    """Grading stage config.

    Attributes:
        mixup_prob: probability that a training batch is mixed (MixUp); 0 = off.
        mixup_alpha: MixUp's Beta(α, α) parameter.
        freeze_backbone_epochs: epochs at the start with the backbone frozen.
        kfold: folds of patient-level cross-validation run by ``train`` before the
            final model; 0 or 1 = off.
    """

    model: GraderConfig = GraderConfig()
    loss: GradingLossConfig = GradingLossConfig()
    sampler: SamplerConfig = SamplerConfig()
    optim: OptimConfig = OptimConfig(lr=3e-3, backbone_lr_scale=1.0)
    fit: FitConfig = FitConfig(epochs=8)
    mixup_prob: float = 0.0
    mixup_alpha: float = 0.4
    freeze_backbone_epochs: int = 0
    kfold: int = 0


def resample_rates(cfg: SamplerConfig, counts: list[int]) -> list[float] | None:
    """Expected copies per row of each class, or None when not resampling.

    The target share of class c is proportional to ``fraction_c`` (1 by default);
    rate_c = target share / natural share, so the expected epoch size is unchanged.
    """
    if not cfg.balanced:
        return None
    fractions = list(cfg.class_fractions) or [1.0] * len(counts)
    if len(fractions) != len(counts) or any(f < 0 for f in fractions):
        raise ConfigError("class fractions do not match the classes", where="sampler.class_fractions",
                          expected=f"{len(counts)} non-negative numbers", got=str(list(cfg.class_fractions)))
    n = np.asarray(counts, dtype=float)
    present = n > 0
    share = np.asarray(fractions) * present
    share = share / share.sum()
    natural = n / n.sum()
    return [float(s / p) if p > 0 else 0.0 for s, p in zip(share, natural)]


class GradingStage(Stage):
    task, name, order = "grading", "grading", 1
    config_cls = GradingConfig
    primary_metric = "f1_macro"

    def build_model(self, cfg: GradingConfig, info: DatasetInfo) -> PartsModule:
        return Grader(cfg.model, info.channels, cfg.data.image_size, len(info.class_names))

    def trainable_parts(self, cfg: GradingConfig, epoch: int) -> set[str]:
        return {"classifier"} if epoch < cfg.freeze_backbone_epochs else {"backbone", "classifier"}

    def param_groups(self, model: PartsModule, cfg: GradingConfig) -> dict[str, list[nn.Parameter]]:
        # The backbone is in the optimiser from the start: frozen epochs leave its grads
        # None, which the optimiser skips, so unfreezing needs no new optimiser.
        return {"backbone": model.part_parameters("backbone"), "head": model.part_parameters("classifier")}

    def resample_rates(self, cfg: GradingConfig, stats: dict[str, Any]) -> list[float] | None:
        return resample_rates(cfg.sampler, stats["class_counts"])

    def prepare(self, ctx: Context) -> None:
        loss = ctx.cfg.loss
        weights = class_weights(ctx.stats["class_counts"], loss.class_weight_power, loss.class_weight_min,
                                loss.class_weight_max)
        ctx.extra["class_weight"] = torch.tensor(weights, dtype=torch.float32, device=ctx.device)

    def _loss(self, logits: torch.Tensor, target: torch.Tensor, ctx: Context) -> torch.Tensor:
        loss = ctx.cfg.loss
        return classification_loss(logits, target, loss.name, ctx.extra["class_weight"], loss.label_smoothing,
                                   loss.focal_gamma)

    def train_step(self, model: nn.Module, batch: dict[str, torch.Tensor], ctx: Context) -> dict[str, torch.Tensor]:
        images, target = batch["image"], batch["label"]
        cfg = ctx.cfg
        if cfg.mixup_prob > 0 and float(torch.rand(())) < cfg.mixup_prob:
            # Torch's generator (seeded per worker by fit.seed), not NumPy's global one.
            lam = float(torch.distributions.Beta(cfg.mixup_alpha, cfg.mixup_alpha).sample())
            perm = torch.randperm(images.shape[0], device=images.device)
            images = lam * images + (1 - lam) * images[perm]
            onehot = F.one_hot(target, len(ctx.info.class_names)).float()
            target = lam * onehot + (1 - lam) * onehot[perm]
        logits = model(images)["logits"]
        return {"loss": self._loss(logits, target, ctx), "score_spread": train_spread(torch.softmax(logits, 1)),
                "loss_floor": self._loss_floor(target, logits.shape[1], ctx)}

    def _loss_floor(self, target: torch.Tensor, classes: int, ctx: Context) -> torch.Tensor:
        """The loss of a model that predicts this batch's training targets exactly (after
        label smoothing and MixUp): what memorising the training set reaches. 0 for hard
        labels without smoothing; label smoothing 0.3 or MixUp leave a floor that the
        train loss cannot cross, so "the train loss halved" means nothing there, while
        its excess over this floor still measures how far the training set is fitted
        (``overfitting`` reads it)."""
        with torch.no_grad():
            q = F.one_hot(target, classes).float() if target.ndim == 1 else target.float()
            smoothing = ctx.cfg.loss.label_smoothing
            q = q * (1 - smoothing) + smoothing / classes
            return self._loss(q.clamp_min(1e-12).log(), target, ctx)

    def eval_batch(self, model: nn.Module, batch: dict[str, torch.Tensor], ctx: Context) -> dict[str, np.ndarray]:
        logits = model(batch["image"])["logits"].float()
        loss = F.cross_entropy(logits, batch["label"], reduction="none")
        return {"probs": torch.softmax(logits, 1).cpu().numpy(), "labels": batch["label"].cpu().numpy(),
                "loss": loss.cpu().numpy()}

    def epoch_metrics(self, arrays: dict[str, np.ndarray], model: PartsModule, ctx: Context) -> dict[str, Any]:
        names = ctx.info.class_names
        metrics = multiclass_metrics(arrays["probs"].reshape(-1, len(names)), arrays["labels"].astype(int), names)
        metrics.update(validation_loss(arrays["loss"]))
        return metrics


register(GradingStage())
