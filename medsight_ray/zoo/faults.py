"""Faults the zoo injects from its own code, never through a product setting.

Some pathologies have no cause a user can write in a config: a loss with a flipped
sign is a bug in someone's code, and prototypes that start identical come from a bad
initialiser. The zoo reproduces them with stage subclasses here (the fit loop finds a
stage by its dotted path, so a worker imports them as it imports the product's own).
Data faults (boxes with x and y swapped, masks shifted against their images, rows
stored grouped by class) are rewritten into a copy of a dataset, as a faulty importer
would have written it (:mod:`medsight_ray.zoo.datafaults`).
"""

from __future__ import annotations

from dataclasses import replace

import torch
from torch import nn

from medsight_ray.fit.stage import Context
from medsight_ray.losses.bbox import bbox_localisation_loss
from medsight_ray.losses.concept import concept_loss
from medsight_ray.stages.concepts import ConceptsStage
from medsight_ray.stages.prototypes import PrototypesStage


class SignFlippedBoxLoss(ConceptsStage):
    """Stage 1 whose localisation term has its sign flipped: it rewards CAM outside the
    boxes and punishes it inside (a truly backwards loss, unlike the seeds' hinge).
    ``sigmoid(-c) = 1 - sigmoid(c)``, so the mse form on negated CAMs is the flipped one."""

    def train_step(self, model: nn.Module, batch: dict[str, torch.Tensor], ctx: Context) -> dict[str, torch.Tensor]:
        out = model(batch["image"])
        cfg = ctx.cfg.loss
        cls = concept_loss(out, batch["concepts"], batch["boxes"], replace(cfg, beta=0.0), ctx.extra["pos_weight"])
        flipped = bbox_localisation_loss(-out["cams"], batch["boxes"], "mse", cfg.loc_margin)
        return {"loss": cls["loss"] + cfg.beta * flipped, "cls": cls["cls"], "loc": flipped.detach()}


class IdenticalPrototypes(PrototypesStage):
    """Stage 2 whose M prototypes of each concept start as copies of the first: a bad
    initialiser. Identical prototypes get identical gradients and never separate."""

    def prepare(self, ctx: Context) -> None:
        super().prepare(ctx)
        with torch.no_grad():
            protos = ctx.model.prototypes
            protos.copy_(protos[:, :1].expand_as(protos))
