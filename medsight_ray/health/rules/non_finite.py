"""The ``non_finite`` health rule: its settings, check, causes and remedies."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from medsight_ray.health.remedies import CHECK_DATA, Change, Evidence, Remedy, Step, too_fast
from medsight_ray.health.rule import Finding, Rule, RuleConfig, StepState, register


@dataclass(frozen=True)
class NonFiniteConfig(RuleConfig):
    """``non_finite``: the loss or the gradient norm is NaN or infinite.

    Attributes:
        threshold: unused (a NaN or Inf has no degree).
    """


@register
class NonFinite(Rule):
    """non_finite: see :meth:`check`; its settings: :class:`NonFiniteConfig`."""

    name = "non_finite"
    kind = "step"
    Config = NonFiniteConfig
    causes = (
        'learning rate far too high',
        'fp16 overflow without loss scaling',
        'log(0) or division by zero in a loss',
    )
    fires_when = (
        "loss or gradient norm NaN/Inf (stops the epoch at once); a step float16's GradScaler skipped (its scaled"
        ' gradients overflowed, by design) is counted in `train/skipped_steps`, never judged here, while a '
        'non-finite loss from the forward pass still is'
    )
    origin = '—'

    @staticmethod
    def check(cfg: NonFiniteConfig, state: StepState, loss: float, grad_norm: float) -> Finding | None:
        """Loss or gradient norm is NaN or infinite."""
        if math.isfinite(loss) and math.isfinite(grad_norm):
            return None
        return {"loss": loss, "grad_norm": grad_norm}, "loss and gradient norm must be finite"

    @staticmethod
    def remedies(evidence: Evidence, cfg: Any, default: Any) -> list[Step]:
        return [*too_fast(evidence, cfg, default), Remedy("train in full precision", (Change("fit.amp", False),)),
                CHECK_DATA]
