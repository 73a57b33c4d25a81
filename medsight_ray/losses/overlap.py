"""Overlap losses for binary segmentation: Tversky, and Dice and IoU as its special cases.

Per image i, with p = sigmoid(logits) and target t in {0, 1}:

    TP = Σ p·t,  FP = Σ p·(1 - t),  FN = Σ (1 - p)·t
    T_i = TP / (TP + α·FP + β·FN)          Dice: α = β = 0.5;  IoU (Jaccard): α = β = 1
    L   = mean over images with a non-empty target of (1 - T_i)

Shapes: ``logits``, ``target`` (B, 1, H, W); ``valid`` (B,) 1 where the mask is known.
Lower is better: 0 for a perfect mask, 1 when nothing overlaps.

Empty targets: the ratio is undefined when an image has no foreground, and we leave
those images out. MONAI's smoothing instead scores an all-zero prediction on an
empty mask as a perfect 0, and any false positive there as nearly 1: with mostly
empty masks that rewards predicting nothing everywhere (seed 004's loss → 0). Here
false positives on empty images are left to the pixel loss (BCE or focal) that a
combination adds. A batch with no foreground at all gives exactly 0, with no gradient.
Unknown masks (``valid`` = 0) never count.
"""

from __future__ import annotations

import torch


def tversky_loss(logits: torch.Tensor, target: torch.Tensor, valid: torch.Tensor | None = None,
                 alpha: float = 0.5, beta: float = 0.5) -> torch.Tensor:
    """Scalar ``mean(1 - T_i)`` over valid images with foreground; see the module docstring."""
    p = torch.sigmoid(logits).flatten(1)
    t = target.flatten(1).to(p.dtype)
    tp = (p * t).sum(1)
    fp = (p * (1 - t)).sum(1)
    fn = ((1 - p) * t).sum(1)
    keep = t.sum(1) > 0
    if valid is not None:
        keep = keep & (valid > 0.5)
    if not keep.any():
        return logits.sum() * 0.0
    index = tp / (tp + alpha * fp + beta * fn).clamp(min=1e-7)
    return (1 - index)[keep].mean()


def dice_loss(logits: torch.Tensor, target: torch.Tensor, valid: torch.Tensor | None = None) -> torch.Tensor:
    """Soft Dice loss: Tversky with α = β = 0.5."""
    return tversky_loss(logits, target, valid, 0.5, 0.5)


def iou_loss(logits: torch.Tensor, target: torch.Tensor, valid: torch.Tensor | None = None) -> torch.Tensor:
    """Soft IoU (Jaccard) loss: Tversky with α = β = 1."""
    return tversky_loss(logits, target, valid, 1.0, 1.0)
