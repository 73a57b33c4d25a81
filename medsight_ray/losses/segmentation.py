"""Segmentation loss factory: any of BCE, Dice, focal, IoU, Tversky, or a weighted sum.

    build_segmentation_loss("dice")
    build_segmentation_loss("tversky", alpha=0.3, beta=0.7)
    build_segmentation_loss("combined", weights={"bce": 0.5, "dice": 0.5}, tversky={"alpha": 0.3, "beta": 0.7})

Every loss is called as ``loss(logits, target, valid)`` with ``logits``, ``target``
(B, 1, H, W) and ``valid`` (B,); it returns a scalar, lower is better. An unknown name
or keyword is rejected with the list of known ones.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Mapping
from functools import partial
from typing import Any, Literal

import torch

from medsight_ray.errors import ConfigError
from medsight_ray.losses.overlap import dice_loss, iou_loss, tversky_loss
from medsight_ray.losses.pixel import bce_loss, binary_focal_loss

SegLoss = Callable[[torch.Tensor, torch.Tensor, torch.Tensor | None], torch.Tensor]
LOSSES: dict[str, Callable[..., torch.Tensor]] = {
    "bce": bce_loss, "dice": dice_loss, "focal": binary_focal_loss, "iou": iou_loss, "tversky": tversky_loss,
}
#: A loss of :data:`LOSSES` or their weighted sum; the config field ``loss.name`` has this type.
SegLossName = Literal["combined", "bce", "dice", "focal", "iou", "tversky"]


def _bind(name: str, kwargs: Mapping[str, Any]) -> SegLoss:
    if name not in LOSSES:
        raise ConfigError("unknown segmentation loss", where="loss.name",
                          expected=f"one of {sorted([*LOSSES, 'combined'])}", got=repr(name))
    fn = LOSSES[name]
    allowed = [p for p in inspect.signature(fn).parameters if p not in ("logits", "target", "valid")]
    unknown = sorted(set(kwargs) - set(allowed))
    if unknown:
        raise ConfigError(f"unknown keyword for segmentation loss {name!r}", where="loss options",
                          expected=f"keywords among {allowed}", got=str(unknown))
    return partial(fn, **kwargs)


def build_segmentation_loss(name: str, weights: Mapping[str, float] | None = None,
                            **kwargs: Any) -> SegLoss:
    """Build loss ``name``; for ``combined``, ``weights`` maps names to weights and
    ``kwargs`` maps a name to its own keyword dict."""
    if name != "combined":
        return _bind(name, kwargs)
    if not weights or not any(w > 0 for w in weights.values()):
        raise ConfigError("combined loss needs positive weights", where="loss.weights",
                          expected=f"a mapping from {sorted(LOSSES)} to weights, one > 0", got=str(weights))
    parts = [(w, _bind(n, kwargs.get(n, {}))) for n, w in weights.items() if w > 0]

    def combined(logits: torch.Tensor, target: torch.Tensor, valid: torch.Tensor | None = None) -> torch.Tensor:
        return sum(w * fn(logits, target, valid) for w, fn in parts)  # type: ignore[return-value]

    return combined
