"""Stage 2 of the concept model: learn M prototypes per concept.

Starts from stage 1's best checkpoint. Trains ``projector`` (``head_lr_scale``) and
``prototypes`` (``prototype_lr_scale``) with the prototype contrastive loss at
temperature τ; the backbone and concept head are frozen and the CAMs enter detached.
Seed 001's stage 2 had no validation at all. Here every epoch reports:

    loss                   validation contrastive loss (lower is better)
    retrieval              share of present concepts whose nearest prototype (of all
                           K·M) is one of their own (higher is better; primary)
    prototype_similarity   mean pairwise cosine of all K·M prototypes (lower = more diverse)
    within_similarity      mean pairwise cosine of the M prototypes of a concept
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
from medsight_ray.losses.prototype import prototype_contrastive_loss, prototype_diversity
from medsight_ray.models.concept import ConceptModelConfig
from medsight_ray.models.parts import PartsModule
from medsight_ray.stages.concepts import build_concept_model
from medsight_ray.stages.registry import register


@dataclass(frozen=True)
class PrototypeLossConfig:
    """Stage 2 loss: prototype contrastive loss.

    Attributes:
        temperature: τ of the contrastive softmax (seed 001 used 0.1, then 0.3); lower
            is sharper.
    """

    temperature: float = 0.3


@dataclass(frozen=True)
class PrototypesConfig(StageConfig):
    """Stage 2 config."""

    model: ConceptModelConfig = ConceptModelConfig()
    loss: PrototypeLossConfig = PrototypeLossConfig()
    optim: OptimConfig = OptimConfig(lr=3e-3, head_lr_scale=1.0, prototype_lr_scale=1.0)


def within_similarity(prototypes: torch.Tensor) -> float:
    """Mean pairwise cosine among each concept's M prototypes (K, M, D), averaged over K."""
    sim = torch.einsum("kmd,knd->kmn", prototypes, prototypes)
    m = prototypes.shape[1]
    if m < 2:
        return float("nan")
    off = sim.sum((1, 2)) - sim.diagonal(dim1=1, dim2=2).sum(1)
    return float((off / (m * (m - 1))).mean())


class PrototypesStage(Stage):
    task, name, order = "concepts", "prototypes", 2
    config_cls = PrototypesConfig
    primary_metric = "retrieval"

    def build_model(self, cfg: PrototypesConfig, info: DatasetInfo) -> PartsModule:
        return build_concept_model(cfg, info)

    def trainable_parts(self, cfg: PrototypesConfig, epoch: int) -> set[str]:
        return {"projector", "prototypes"}

    def param_groups(self, model: PartsModule, cfg: PrototypesConfig) -> dict[str, list[nn.Parameter]]:
        return {"head": model.part_parameters("projector"), "prototype": model.part_parameters("prototypes")}

    def train_step(self, model: nn.Module, batch: dict[str, torch.Tensor], ctx: Context) -> dict[str, torch.Tensor]:
        out = model(batch["image"])
        loss = prototype_contrastive_loss(out["local_vectors"], out["prototypes"], batch["concepts"],
                                          ctx.cfg.loss.temperature)
        return {"loss": loss}

    def eval_batch(self, model: nn.Module, batch: dict[str, torch.Tensor], ctx: Context) -> dict[str, np.ndarray]:
        out = model(batch["image"])
        # Images without a present concept have no prototype loss (it averages over present ones).
        with_concepts = (batch["concepts"] > 0.5).any(1)
        vectors, concepts = out["local_vectors"][with_concepts], batch["concepts"][with_concepts]
        loss = per_image_loss(lambda i: prototype_contrastive_loss(vectors[i], out["prototypes"], concepts[i],
                                                                   ctx.cfg.loss.temperature), len(vectors))
        k, m, _ = out["prototypes"].shape
        nearest = torch.einsum("bkd,jmd->bkjm", out["local_vectors"], out["prototypes"]).flatten(2).argmax(-1) // m
        own = nearest == torch.arange(k, device=nearest.device)
        present = batch["concepts"] > 0.5
        return {"hits": own[present].float().cpu().numpy(), "loss": loss}

    def epoch_metrics(self, arrays: dict[str, np.ndarray], model: PartsModule, ctx: Context) -> dict[str, Any]:
        protos = model.normalised_prototypes().detach().float()
        return {
            **validation_loss(arrays["loss"]),
            "retrieval": float(arrays["hits"].mean()) if arrays["hits"].size else float("nan"),
            "prototype_similarity": prototype_diversity(protos),
            "within_similarity": within_similarity(protos),
            # A random nearest prototype belongs to the image's own concept 1 time in K.
            "chance": 1.0 / max(protos.shape[0], 1),
        }


register(PrototypesStage())
