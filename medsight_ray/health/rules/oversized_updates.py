"""The ``oversized_updates`` health rule: its settings, check, causes and remedies."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from medsight_ray.health.remedies import Evidence, Step, too_fast
from medsight_ray.health.rule import Finding, Rule, RuleConfig, Start, register
from medsight_ray.health.signals import finite


@dataclass(frozen=True)
class OversizedUpdatesConfig(RuleConfig):
    """``oversized_updates``: each optimiser step moves the trainable weights by a large
    part of their own norm (``train/update_ratio``), so nothing a step learns survives
    the next. Adam-type optimisers normalise the gradient, so a learning rate far too
    high shows here, not in the gradient norm.

    Attributes:
        threshold: weight change per step, relative to the weights' norm, above which
            the updates overwrite the weights (measured on 32 px synthetic stages:
            healthy defaults 0.012-0.022 at epoch 1 and less later; lr 10x the grading
            default 0.19, and it recovered; lr 0.1 0.66 with F1 at chance; the demo's
            lr 1.0 2.8-4.5).
        grace: epochs before the rule may fire (0: from the first epoch).
    """

    threshold: float = 0.5
    grace: int = 0


@register
class OversizedUpdates(Rule):
    """oversized_updates: see :meth:`check`; its settings: :class:`OversizedUpdatesConfig`."""

    name = "oversized_updates"
    kind = "epoch"
    Config = OversizedUpdatesConfig
    causes = (
        (
            'a learning rate far too high: every step moves the weights by a large part of their norm, so nothing'
            ' learned persists (outputs saturate; eval-mode outputs often go constant)'
        ),
    )
    fires_when = (
        "from epoch 1: the epoch's weight change per optimiser step (‖Δw‖ / ‖w‖ / steps) > 0.5: every step "
        'rewrites the weights; Adam hides such a learning rate from the gradient norm (remedy: lower the lr)'
    )
    origin = "the demo's lr = 1.0 trial"

    @staticmethod
    def check(cfg: OversizedUpdatesConfig, history: list[dict[str, Any]], start: Start = None) -> Finding | None:
        """The epoch's weight change per optimiser step (``train/update_ratio``: distance
        moved over the weights' norm, per step) above ``threshold``: the learning rate
        overwrites the weights rather than adjusting them."""
        ratio = finite(history[-1]["train"].get("train/update_ratio"))
        if ratio is not None and ratio > cfg.threshold:
            return {"update_ratio": ratio}, f"each step moves the weights by > {cfg.threshold:g} of their norm"
        return None

    @staticmethod
    def remedies(evidence: Evidence, cfg: Any, default: Any) -> list[Step]:
        return too_fast(evidence, cfg, default)
