"""Multi-class classification losses: weighted cross-entropy and focal loss.

Both take ``logits`` (B, C) and ``target`` as class indices (B,) int64 or as soft
probabilities (B, C) (MixUp). ``weight`` (C,) scales each class; ``label_smoothing``
ε mixes the target with the uniform distribution. Lower is better.

    CE:     torch's ``cross_entropy`` (weighted mean over the batch for index targets,
            plain mean for soft targets)
    focal:  l_i = - Σ_c w_c · y_ic · (1 - p_ic)^γ · log p_ic,   y smoothed by ε,
            reduced exactly as torch reduces CE, so γ = 0 gives CE to the last digit.

The focal term down-weights samples the model already gets right. Stacked on heavy
class weights it starves the majority classes of gradient (seed 003's collapse).
"""

from __future__ import annotations

from typing import Literal, get_args

import torch
import torch.nn.functional as F

from medsight_ray.errors import ConfigError

#: The classification losses; the config field ``loss.name`` has this type.
ClassificationLossName = Literal["ce", "focal"]
NAMES: tuple[str, ...] = get_args(ClassificationLossName)


def classification_loss(logits: torch.Tensor, target: torch.Tensor, name: str = "ce",
                        weight: torch.Tensor | None = None, label_smoothing: float = 0.0,
                        gamma: float = 2.0) -> torch.Tensor:
    """Scalar loss ``name`` in {ce, focal}; see the module docstring."""
    if name not in NAMES:
        raise ConfigError("unknown classification loss", where="loss.name", expected=f"one of {list(NAMES)}",
                          got=repr(name))
    if weight is not None:
        weight = weight.to(logits.dtype)
    if name == "ce":
        return F.cross_entropy(logits, target, weight=weight, label_smoothing=label_smoothing)
    classes = logits.shape[1]
    hard = target.ndim == 1
    y = F.one_hot(target, classes).to(logits.dtype) if hard else target.to(logits.dtype)
    y = y * (1 - label_smoothing) + label_smoothing / classes
    w = weight if weight is not None else torch.ones(classes, dtype=logits.dtype, device=logits.device)
    logp = F.log_softmax(logits, dim=1)
    per_sample = -(w * y * (1 - logp.exp()).pow(gamma) * logp).sum(1)
    if hard:
        return per_sample.sum() / w[target].sum().clamp(min=1e-12)
    return per_sample.mean()
