"""Stage 1 concept loss: weighted BCE on max-pooled CAMs plus bbox localisation.

    L = α · BCEWithLogits(concept_logits, concepts; pos_weight) + β · L_loc(cams, boxes)

Shapes: ``concept_logits`` (B, K) logits (global max of the CAMs); ``concepts`` (B, K)
in {0, 1}; ``pos_weight`` (K,) ≥ 0, typically negatives/positives per concept,
capped; ``cams`` (B, K, H, W) logits; ``boxes`` (B, N, 5) as in
:mod:`medsight_ray.losses.bbox`. Lower is better.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from medsight_ray.losses.bbox import LocMode, bbox_localisation_loss


@dataclass(frozen=True)
class ConceptLossConfig:
    """Stage 1 loss: α · BCE(concepts) + β · bbox localisation.

    Attributes:
        alpha: weight of the concept BCE.
        beta: weight of the bbox localisation loss; 0 = off.
        loc_mode: localisation loss form, ``mse`` or ``hinge``
            (:mod:`medsight_ray.losses.bbox`).
        loc_margin: hinge margin m on the CAM logits.
        pos_weight_max: cap on the per-concept BCE ``pos_weight`` (negatives / positives).
    """

    alpha: float = 1.0
    beta: float = 1.0
    loc_mode: LocMode = "mse"
    loc_margin: float = 0.0
    pos_weight_max: float = 10.0


def pos_weight_from_counts(positives: torch.Tensor, total: int, cap: float) -> torch.Tensor:
    """BCE ``pos_weight`` per concept: negatives / positives, in [1, cap] (1 for absent concepts)."""
    pos = positives.to(torch.float32)
    weight = (total - pos) / pos.clamp(min=1)
    return torch.where(pos > 0, weight, torch.ones_like(weight)).clamp(1.0, cap)


def concept_loss(out: dict[str, torch.Tensor], concepts: torch.Tensor, boxes: torch.Tensor,
                 cfg: ConceptLossConfig, pos_weight: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
    """Return ``loss`` and its parts ``cls`` and ``loc`` (scalars, lower is better)."""
    cls = F.binary_cross_entropy_with_logits(out["concept_logits"], concepts, pos_weight=pos_weight)
    loc = bbox_localisation_loss(out["cams"], boxes, cfg.loc_mode, cfg.loc_margin) if cfg.beta else cls * 0
    return {"loss": cfg.alpha * cls + cfg.beta * loc, "cls": cls.detach(), "loc": loc.detach()}
