"""The ``loss_falls_metric_flat`` health rule: its settings, check, causes and remedies."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from medsight_ray.health.remedies import CHECK_DATA, Change, Evidence, Remedy, Step, has, more_dice
from medsight_ray.health.rule import Finding, Rule, RuleConfig, Start, register
from medsight_ray.health.signals import best_skill, ranked, rising


@dataclass(frozen=True)
class LossFallsMetricFlatConfig(RuleConfig):
    """``loss_falls_metric_flat``.

    Attributes:
        threshold: fall of the train loss since epoch 1, relative, above which the loss
            counts as learning (0.2 = 20 % down).
        grace: epochs before the rule may fire.
        skill_band: skill, (metric − chance) / (1 − chance), at or below which the
            metric counts as flat at chance here (0.1 = AUC 0.55).
        min_rise: rise of the primary metric over the last epoch (its units) at or above
            which the metric is not flat.
        ranked_auc: macro AUC (where reported beside a thresholded primary metric) at or
            above which the falling loss has taught the model to rank the images by
            class, so the flat metric is its output biases, not a loss that optimises
            something else.
    """

    threshold: float = 0.2
    grace: int = 2
    skill_band: float = 0.1
    min_rise: float = 0.02
    min_steps: int = 30
    ranked_auc: float = 0.85


@register
class LossFallsMetricFlat(Rule):
    """loss_falls_metric_flat: see :meth:`check`; its settings: :class:`LossFallsMetricFlatConfig`."""

    name = "loss_falls_metric_flat"
    kind = "epoch"
    Config = LossFallsMetricFlatConfig
    causes = (
        'the loss optimises something other than the metric (e.g. the localisation term dominates)',
        'a loss a trivial prediction satisfies (BCE alone on mostly empty masks, seed 004)',
        'labels not aligned with images',
    )
    fires_when = (
        'train loss down > 20 % while skill ≤ 0.1 in every epoch so far and the metric rose < 0.02 in the last '
        'epoch, unless the macro AUC (where reported beside a thresholded metric, as in grading) is ≥ 0.85: the '
        "ranking is learned and only the output biases lean, `class_collapse`'s case; after 2 epochs and 30 "
        'optimiser steps (remedies include adding Dice to BCE)'
    )
    origin = 'seeds 001, 004'

    @staticmethod
    def check(cfg: LossFallsMetricFlatConfig, history: list[dict[str, Any]], start: Start = None) -> Finding | None:
        """Training loss fell by more than ``threshold`` (relative) while the primary metric's
        skill stayed within ``skill_band`` of chance in every epoch: the loss optimises
        something else. (One epoch's dip to chance in a run that had skill is noise, and a
        model whose ranking is learned, :func:`ranked`, has learned what the loss teaches.)"""
        value = best_skill(history)
        first, last = history[0]["train"].get("train/loss"), history[-1]["train"].get("train/loss")
        if value is None or first is None or last is None or not first > 0 or len(history) < 2:
            return None
        drop = (first - last) / first
        if (drop > cfg.threshold and value <= cfg.skill_band and not rising(history, cfg.min_rise)
                and not ranked(history[-1]["metrics"], cfg.ranked_auc)):
            return ({"loss_drop": drop, "metric": history[-1]["objective"], "skill": value},
                    f"train loss down > {100 * cfg.threshold:g}% with skill <= {cfg.skill_band:g}")
        return None

    @staticmethod
    def remedies(evidence: Evidence, cfg: Any, default: Any) -> list[Step]:
        if has(cfg, "loss.dice_weight"):
            return more_dice(evidence, cfg, default)
        if has(cfg, "loss.beta"):
            return [Remedy("weigh the localisation term less", (Change("loss.beta", factor=0.5),)), CHECK_DATA]
        return [CHECK_DATA]
