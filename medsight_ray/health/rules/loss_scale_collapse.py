"""The ``loss_scale_collapse`` health rule: its settings, check, causes and remedies."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from medsight_ray.health.remedies import CHECK_DATA, Change, Evidence, Remedy, Step
from medsight_ray.health.rule import Finding, Rule, RuleConfig, StepState, register


@dataclass(frozen=True)
class LossScaleCollapseConfig(RuleConfig):
    """``loss_scale_collapse``: float16 mixed precision's dynamic loss scale collapsed
    ("reducing loss scale to 0"): every step overflows whatever the scale.

    GradScaler skipping a step is routine (it starts at 2**16, halves after an
    overflow, doubles after 2,000 clean steps and overflows again); only a scale that
    keeps falling is a pathology. Judged on skipped steps alone.

    Attributes:
        threshold: the loss scale (a multiplier, 2**16 at the start) below which the
            rule fires: below 1 the scaler shrinks the gradients it was meant to keep
            out of float16's underflow.
        patience: consecutive skipped steps after which it fires whatever the scale.
    """

    threshold: float = 1.0
    patience: int = 50


@register
class LossScaleCollapse(Rule):
    """loss_scale_collapse: see :meth:`check`; its settings: :class:`LossScaleCollapseConfig`."""

    name = "loss_scale_collapse"
    kind = "skipped_step"
    Config = LossScaleCollapseConfig
    causes = (
        (
            'float16 overflow that no loss scale avoids: activations or gradients beyond 65504 (an input not '
            'normalised, a loss summed over pixels rather than averaged)'
        ),
        'a learning rate so high that the gradients overflow at any scale',
    )
    fires_when = (
        "float16 mixed precision only: GradScaler's loss scale fell below 1, or 50 steps in a row were skipped "
        '("reducing loss scale to 0"); judged on skipped steps alone (remedy: train in full precision)'
    )
    origin = "PyTorch AMP's own failure mode"

    @staticmethod
    def check(cfg: LossScaleCollapseConfig, state: StepState, scale: float) -> Finding | None:
        """After a step GradScaler skipped: its loss scale below ``threshold``, or
        ``patience`` skipped steps in a row."""
        if scale >= cfg.threshold and state.skip_streak < cfg.patience:
            return None
        return ({"loss_scale": scale, "skipped_in_a_row": state.skip_streak, "skipped": state.skipped},
                f"loss scale >= {cfg.threshold:g} and fewer than {cfg.patience} skipped steps in a row")

    @staticmethod
    def remedies(evidence: Evidence, cfg: Any, default: Any) -> list[Step]:
        return [Remedy("train in full precision", (Change("fit.amp", False),)), CHECK_DATA]
