"""Pixel-wise losses for binary segmentation: BCE and binary focal.

    BCE:    l = -[w₊ · t · log p + (1 - t) · log(1 - p)]        (w₊ = pos_weight)
    focal:  l = -[a · t · (1 - p)^γ · log p + (1 - a) · (1 - t) · p^γ · log(1 - p)]
    loss  = mean of l over the pixels of valid images (0 if none is valid)

Shapes: ``logits``, ``target`` (B, 1, H, W), logits in, targets in {0, 1}; ``valid``
(B,) 1 where the mask is known (``has_segmentation``). Lower is better.

BCE alone on mostly empty masks reaches a small loss by predicting nothing: the
foreground is too few pixels to matter (seed 004). Combine with an overlap loss.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def _masked_mean(per_pixel: torch.Tensor, valid: torch.Tensor | None) -> torch.Tensor:
    per_image = per_pixel.flatten(1).mean(1)
    if valid is None:
        return per_image.mean()
    keep = valid > 0.5
    return per_image[keep].mean() if keep.any() else per_pixel.sum() * 0.0


def bce_loss(logits: torch.Tensor, target: torch.Tensor, valid: torch.Tensor | None = None,
             pos_weight: float = 1.0) -> torch.Tensor:
    """Scalar pixel BCE with logits over valid images."""
    pw = torch.tensor(pos_weight, dtype=logits.dtype, device=logits.device)
    per_pixel = F.binary_cross_entropy_with_logits(logits, target.to(logits.dtype), pos_weight=pw,
                                                   reduction="none")
    return _masked_mean(per_pixel, valid)


def binary_focal_loss(logits: torch.Tensor, target: torch.Tensor, valid: torch.Tensor | None = None,
                      gamma: float = 2.0, alpha: float = 0.5) -> torch.Tensor:
    """Scalar binary focal loss over valid images; ``alpha`` weighs the foreground."""
    t = target.to(logits.dtype)
    logp = F.logsigmoid(logits)
    log1mp = F.logsigmoid(-logits)
    p = logp.exp()
    per_pixel = -(alpha * t * (1 - p).pow(gamma) * logp + (1 - alpha) * (1 - t) * p.pow(gamma) * log1mp)
    # alpha = 0.5 halves both terms; scale by 2 so that gamma = 0, alpha = 0.5 equals BCE.
    return 2 * _masked_mean(per_pixel, valid)
