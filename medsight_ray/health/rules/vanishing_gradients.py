"""The ``vanishing_gradients`` health rule: its settings, check, causes and remedies."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from medsight_ray.health.remedies import Advice, Evidence, Step, lr_ratio, pretrained, restore_lr, stalled
from medsight_ray.health.rule import Finding, Rule, RuleConfig, StepState, register


@dataclass(frozen=True)
class VanishingConfig(RuleConfig):
    """``vanishing_gradients``.

    Attributes:
        threshold: total gradient norm (L2) below which a step counts.
        grace: optimiser steps before the rule may fire.
        patience: consecutive steps below the threshold.
    """

    threshold: float = 1e-7
    patience: int = 20


@register
class VanishingGradients(Rule):
    """vanishing_gradients: see :meth:`check`; its settings: :class:`VanishingConfig`."""

    name = "vanishing_gradients"
    kind = "step"
    Config = VanishingConfig
    causes = (
        'learning rates 100x too low (seed 001: backbone 1e-6, head 2e-5)',
        'every trained part frozen or saturated',
    )
    fires_when = 'grad norm < 1e-7 for 20 steps'
    origin = 'seed 000'

    @staticmethod
    def check(cfg: VanishingConfig, state: StepState, loss: float, grad_norm: float) -> Finding | None:
        """Total gradient norm below the threshold for ``patience`` consecutive steps."""
        state.vanish_streak = state.vanish_streak + 1 if grad_norm < cfg.threshold else 0
        if state.steps > cfg.grace and state.vanish_streak >= cfg.patience:
            return {"grad_norm": grad_norm, "steps_below": state.vanish_streak}, f"grad norm < {cfg.threshold:g}"
        return None

    @classmethod
    def causes_for(cls, evidence: Evidence, cfg: Any, default: Any) -> tuple[str, ...]:
        """A learning rate too low only where the run's rate is below the stage default
        (the judgement :meth:`remedies` makes); at or above it, the frozen or saturated
        parts."""
        return cls.causes[1:] if lr_ratio(cfg, default) >= 1 else cls.causes

    @staticmethod
    def remedies(evidence: Evidence, cfg: Any, default: Any) -> list[Step]:
        """A gradient that vanished says nothing of the step size (a gradient does not
        depend on the learning rate), so the rate is judged by its level against the
        stage default: below it (seed 001's 100x too low rates), it rises to the default
        (a pretrained backbone keeps its own, :func:`raise_lr`); at or above it, a low
        rate is not the cause and no rate change is prescribed, only where to look (a
        frozen or saturated part)."""
        steps = stalled(evidence, cfg, default)
        advice = [s for s in steps if isinstance(s, Advice)]
        if lr_ratio(cfg, default) >= 1:
            return advice
        if pretrained(cfg):
            return steps
        return [restore_lr("raise the learning rate to the stage default", cfg, default), *advice]
