"""Stage 3 of the concept model: diseases from concept and prototype evidence.

Starts from stage 2's best checkpoint; trains only ``task_head`` (``head_lr_scale``)
with multi-label BCE and a per-disease ``pos_weight``. Validation: disease ROC-AUC
macro and per class, mAP, F1 macro and micro, per-class F1, and prediction
diversity: the share of validation images that get the most common predicted label
set (1.0 = the same prediction for everyone, seed 001's "No finding" collapse).
Primary metric: ``auc_macro``.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from medsight_ray.data.schema import DatasetInfo
from medsight_ray.fit.config import OptimConfig, StageConfig
from medsight_ray.fit.stage import Context, Stage, train_spread, validation_loss
from medsight_ray.losses.concept import pos_weight_from_counts
from medsight_ray.metrics.classification import multilabel_metrics
from medsight_ray.models.concept import ConceptModelConfig
from medsight_ray.models.parts import PartsModule
from medsight_ray.stages.concepts import build_concept_model
from medsight_ray.stages.registry import register


@dataclass(frozen=True)
class DiagnosisLossConfig:
    """Stage 3 loss: BCE over the diseases.

    Attributes:
        pos_weight_max: cap on the per-disease BCE ``pos_weight`` (negatives / positives).
    """

    pos_weight_max: float = 10.0


@dataclass(frozen=True)
class DiagnosisConfig(StageConfig):
    """Stage 3 config."""

    model: ConceptModelConfig = ConceptModelConfig()
    loss: DiagnosisLossConfig = DiagnosisLossConfig()
    optim: OptimConfig = OptimConfig(lr=1e-2, head_lr_scale=1.0)


class DiagnosisStage(Stage):
    task, name, order = "concepts", "diagnosis", 3
    config_cls = DiagnosisConfig
    primary_metric = "auc_macro"

    def build_model(self, cfg: DiagnosisConfig, info: DatasetInfo) -> PartsModule:
        return build_concept_model(cfg, info)

    def trainable_parts(self, cfg: DiagnosisConfig, epoch: int) -> set[str]:
        return {"task_head"}

    def param_groups(self, model: PartsModule, cfg: DiagnosisConfig) -> dict[str, list[nn.Parameter]]:
        return {"head": model.part_parameters("task_head")}

    def prepare(self, ctx: Context) -> None:
        positives = torch.tensor(ctx.stats["target_positives"])
        ctx.extra["pos_weight"] = pos_weight_from_counts(positives, ctx.stats["rows"],
                                                         ctx.cfg.loss.pos_weight_max).to(ctx.device)

    def train_step(self, model: nn.Module, batch: dict[str, torch.Tensor], ctx: Context) -> dict[str, torch.Tensor]:
        out = model(batch["image"])
        loss = F.binary_cross_entropy_with_logits(out["task_logits"], batch["targets"],
                                                  pos_weight=ctx.extra["pos_weight"])
        return {"loss": loss, "score_spread": train_spread(torch.sigmoid(out["task_logits"]))}

    def eval_batch(self, model: nn.Module, batch: dict[str, torch.Tensor], ctx: Context) -> dict[str, np.ndarray]:
        logits = model(batch["image"])["task_logits"].float()
        loss = F.binary_cross_entropy_with_logits(logits, batch["targets"], pos_weight=ctx.extra["pos_weight"],
                                                  reduction="none").mean(1)
        return {"scores": torch.sigmoid(logits).cpu().numpy(), "labels": batch["targets"].cpu().numpy(),
                "loss": loss.cpu().numpy()}

    def epoch_metrics(self, arrays: dict[str, np.ndarray], model: PartsModule, ctx: Context) -> dict[str, Any]:
        names = ctx.info.target_names
        scores = arrays["scores"].reshape(-1, len(names))
        metrics = multilabel_metrics(scores, arrays["labels"].reshape(-1, len(names)), names)
        patterns = Counter(map(tuple, (scores >= 0.5).astype(int)))
        metrics["top_prediction_share"] = patterns.most_common(1)[0][1] / len(scores) if len(scores) else float("nan")
        truths = Counter(map(tuple, arrays["labels"].reshape(-1, len(names)).astype(int)))
        # The commonest true label set's share: a model that predicts one set that often is right to.
        metrics["top_label_share"] = truths.most_common(1)[0][1] / len(scores) if len(scores) else float("nan")
        metrics.update(validation_loss(arrays["loss"]))
        return metrics


register(DiagnosisStage())
