"""The ``prototype_collapse`` health rule: its settings, check, causes and remedies."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from medsight_ray.health.remedies import Advice, Change, Evidence, Remedy, Step, has, value_of
from medsight_ray.health.rule import Finding, Rule, RuleConfig, Start, register


@dataclass(frozen=True)
class PrototypeCollapseConfig(RuleConfig):
    """``prototype_collapse``.

    Attributes:
        threshold: mean pairwise cosine of the prototypes (all, or within a concept)
            above which they have collapsed (cosine, -1 to 1).
        grace: epochs before the rule may fire.
    """

    threshold: float = 0.8


@register
class PrototypeCollapse(Rule):
    """prototype_collapse: see :meth:`check`; its settings: :class:`PrototypeCollapseConfig`."""

    name = "prototype_collapse"
    kind = "epoch"
    Config = PrototypeCollapseConfig
    causes = (
        'contrastive temperature too low (seed 001: tau 0.1)',
        'prototype lr too high',
        'identical initialisation',
    )
    fires_when = 'mean pairwise prototype cosine > 0.8 (all, or within a concept)'
    origin = 'seeds 000, 001'

    @staticmethod
    def check(cfg: PrototypeCollapseConfig, history: list[dict[str, Any]], start: Start = None) -> Finding | None:
        """Mean pairwise cosine of the prototypes (all, or within a concept) above the threshold."""
        m = history[-1]["metrics"]
        values = {k: m[k] for k in ("prototype_similarity", "within_similarity")
                  if isinstance(m.get(k), float) and math.isfinite(m[k])}
        if values and max(values.values()) > cfg.threshold:
            return values, f"mean pairwise cosine > {cfg.threshold:g}"
        return None

    @staticmethod
    def remedies(evidence: Evidence, cfg: Any, default: Any) -> list[Step]:
        steps: list[Step] = []
        if has(cfg, "loss.temperature"):
            tau = value_of(cfg, "loss.temperature")
            steps.append(Remedy("raise the contrastive temperature toward 0.5",
                                (Change("loss.temperature", min(0.5, 3 * tau)),)))
        return [*steps, Remedy("lower the prototype learning rate", (Change("optim.prototype_lr_scale", factor=0.1),)),
                Advice("check that stage 1's CAMs localise (energy_ratio > 1)")]
