"""The ``not_learning`` health rule: its settings, check, causes and remedies."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from medsight_ray.health.remedies import Evidence, Step, stalled
from medsight_ray.health.rule import Finding, Rule, RuleConfig, Start, register
from medsight_ray.health.signals import start_skill, update_ratios


@dataclass(frozen=True)
class NotLearningConfig(RuleConfig):
    """``not_learning``.

    Attributes:
        threshold: change of the train loss since epoch 1, relative, within which it
            counts as flat (0.05 = ± 5 %).
        grace: epochs before the rule may fire.
        metric_gain: rise of the primary metric since epoch 1 that counts as learning
            (the metric's units).
        max_update: the run's largest epoch weight change per step
            (``train/update_ratio``, relative) at or above which the optimiser moves
            the weights and a flat run is slow, not stalled by a learning rate too low
            (measured: seed 001's stage-1 rates 1.7e-5; healthy stages 1.9e-3 to 0.022;
            a slow but healthy stage 3 at 0.022 used to be stopped here).
        start_skill: skill, (metric − chance) / (1 − chance), of the untrained model
            (``health.baseline_eval``) above which the run is fine-tuning a model that
            already knows the task and is never judged stalled: a randomly initialised
            network starts near 0 (its ranking is whatever random features give), a
            pretrained backbone far above (the same bar as ``overfitting.min_skill``,
            the skill of a model that has learned something).
    """

    threshold: float = 0.05
    grace: int = 2
    metric_gain: float = 0.02
    max_update: float = 2e-4
    min_steps: int = 30
    start_skill: float = 0.25


@register
class NotLearning(Rule):
    """not_learning: see :meth:`check`; its settings: :class:`NotLearningConfig`."""

    name = "not_learning"
    kind = "epoch"
    Config = NotLearningConfig
    causes = (
        'learning rates 100x too low (seed 001: backbone 1e-6, head 2e-5)',
        'the trained parts cannot change the output',
    )
    fires_when = (
        "after 2 epochs and 30 optimiser steps, train loss within ± 5 % of epoch 1's, the primary metric up < "
        '0.02, and the weights moved < 2e-4 of their norm a step in every epoch (a flat run whose optimiser moves'
        ' the weights is slow, not stalled), unless the untrained model already had skill > 0.25 (a pretrained '
        'backbone being fine-tuned is at rest, not stalled). Remedy: raise the lr; from a pretrained backbone '
        "only the head's rate rises (`optim.head_lr_scale`), never the backbone's"
    )
    origin = 'seed 001'

    @staticmethod
    def check(cfg: NotLearningConfig, history: list[dict[str, Any]], start: Start = None) -> Finding | None:
        """Since the first epoch the training loss stayed flat (moved by less than
        ``threshold``, relative, either way), the primary metric (``objective``) rose by
        less than ``metric_gain``, and the optimiser barely moved the weights (largest
        ``train/update_ratio`` below ``max_update``, where measured): the run is stalled.
        A loss that rose is divergence, not a stall (:func:`diverging_loss`), and its cure
        is the opposite. A model fine-tuned from a pretrained backbone that had skill before
        its first step (above ``start_skill``, measured) is not stalled when it stays where
        it started: it already knows the task, and a higher learning rate would wash out
        what it knows. The skill alone does not say so: random features rank easy data too
        (measured: seed 001's stage 1 at AUC 0.67 from a random start, stalled)."""
        first, last = history[0]["train"].get("train/loss"), history[-1]["train"].get("train/loss")
        gain = history[-1].get("objective", math.nan) - history[0].get("objective", math.nan)
        if first is None or last is None or not first > 0 or len(history) < 2 or not math.isfinite(gain):
            return None
        began = start_skill(start)
        if began is not None and began > cfg.start_skill and (start or {}).get("pretrained"):
            return None
        drop = (first - last) / first
        # The remedy is a higher learning rate, so the weights must barely move: a flat run
        # whose optimiser moves them is slow (or fails for another reason), not stalled.
        ratios = update_ratios(history)
        moving = bool(ratios) and max(ratios) >= cfg.max_update
        if -cfg.threshold < drop < cfg.threshold and gain < cfg.metric_gain and not moving:
            evidence = {"loss_drop": drop, "metric_gain": gain}
            if ratios:
                evidence["update_ratio"] = max(ratios)
            return (evidence, f"train loss within ±{100 * cfg.threshold:g}% and metric up < {cfg.metric_gain:g} "
                              f"since epoch 1" + (f", weights moved < {cfg.max_update:g} a step" if ratios else ""))
        return None

    @staticmethod
    def remedies(evidence: Evidence, cfg: Any, default: Any) -> list[Step]:
        return stalled(evidence, cfg, default)
