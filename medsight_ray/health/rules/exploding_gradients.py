"""The ``exploding_gradients`` health rule: its settings, check, causes and remedies."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from medsight_ray.health.remedies import Evidence, Step, too_fast
from medsight_ray.health.rule import Finding, Rule, RuleConfig, StepState, register


@dataclass(frozen=True)
class ExplodingConfig(RuleConfig):
    """``exploding_gradients``: gradient norms that grew far beyond the run's own scale.

    Attributes:
        threshold: total gradient norm (L2, before clipping) above which a step counts.
        growth: multiple of the run's starting norm (the smallest of its first
            ``baseline_steps`` steps) that a step's norm must also exceed: gradients
            large from the first step (a low contrastive temperature, heavy class
            weights) are the loss's scale, not an explosion.
        baseline_steps: optimiser steps whose smallest norm is the starting scale.
        grace: optimiser steps before the rule may fire.
        patience: consecutive steps above both limits.
    """

    threshold: float = 100.0
    growth: float = 10.0
    baseline_steps: int = 5
    patience: int = 3


@register
class ExplodingGradients(Rule):
    """exploding_gradients: see :meth:`check`; its settings: :class:`ExplodingConfig`."""

    name = "exploding_gradients"
    kind = "step"
    Config = ExplodingConfig
    causes = (
        'learning rate too high for the batch size',
        'no warmup',
    )
    fires_when = "grad norm > 100 and > 10 × the run's starting norm (the smallest of its first 5 steps) for 3 steps"
    origin = 'seed 000'

    @staticmethod
    def check(cfg: ExplodingConfig, state: StepState, loss: float, grad_norm: float) -> Finding | None:
        """Total gradient norm above ``threshold`` and above ``growth`` × the run's own
        starting scale (the smallest norm of its first ``baseline_steps`` steps: the smallest,
        so that a learning rate that blows up at step 2 does not raise its own bar) for
        ``patience`` consecutive steps. A loss whose gradients are large from the first step
        (a contrastive loss at a low temperature, heavy class weights) has not exploded;
        gradients that grow by orders of magnitude have."""
        if math.isfinite(grad_norm) and len(state.early_norms) < cfg.baseline_steps:
            state.early_norms.append(grad_norm)
        baseline = min(state.early_norms) if state.early_norms else 0.0
        above = grad_norm > cfg.threshold and grad_norm > cfg.growth * baseline
        state.explode_streak = state.explode_streak + 1 if above else 0
        if state.steps > cfg.grace and state.explode_streak >= cfg.patience:
            return ({"grad_norm": grad_norm, "starting_norm": baseline, "steps_above": state.explode_streak},
                    f"grad norm > {cfg.threshold:g} and > {cfg.growth:g} x its starting norm")
        return None

    @staticmethod
    def remedies(evidence: Evidence, cfg: Any, default: Any) -> list[Step]:
        return too_fast(evidence, cfg, default)
