"""The ``chance_metric`` health rule: its settings, check, causes and remedies."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from medsight_ray.health.remedies import (
    CHECK_DATA,
    ORDERS_OFF,
    Advice,
    Evidence,
    Step,
    has,
    lr_ratio,
    raise_lr,
    too_fast,
    value_of,
)
from medsight_ray.health.rule import Finding, Rule, RuleConfig, Start, register
from medsight_ray.health.signals import best_skill, finite, macro_auc, ranked, rising, skill, update_ratios


@dataclass(frozen=True)
class ChanceConfig(RuleConfig):
    """``chance_metric``: the primary metric sits at its chance level, the score of a
    model with no skill on this split (AUC 0.5; the macro F1 of the best constant class;
    the Dice of the better trivial mask; 1 / K for prototype retrieval).

    Attributes:
        threshold: skill, (metric − chance) / (1 − chance), at or below which the run is
            at chance (a fraction of the way from chance to perfect: 0.06 = AUC 0.53).
        grace: epochs before the rule may fire.
        min_rise: rise of the primary metric over the last epoch (its units) at or above
            which the run is climbing out of chance and the rule waits (measured: weak-
            signal segmentation, Dice 0.03 -> 0.12 at epoch 3 below the trivial mask's
            0.22, then learning).
        ranked_auc: macro AUC (where a stage reports one beside a thresholded primary
            metric, as grading does) at or above which the model has learned to rank the
            images by class, so a primary metric at chance is its output biases leaning
            onto one class (``class_collapse``'s case), not a model that learned nothing.
        ranking_se: chance-level standard errors of the macro AUC (``auc_se``, where
            reported) within which of 0.5 the ranking is at chance (2 = about 95 % of
            the AUCs a model with no skill scores on this split). A ranking at chance in
            every epoch is at chance whatever a thresholded primary metric says
            (measured: a grading trial at AUC 0.49-0.53, SE 0.043, with macro F1
            0.18-0.26 above the constant predictor's 0.15).
    """

    threshold: float = 0.06
    grace: int = 2
    min_rise: float = 0.02
    min_steps: int = 30
    ranked_auc: float = 0.85
    ranking_se: float = 2.0


def _ranking_at_chance(cfg: ChanceConfig, history: list[dict[str, Any]]) -> bool:
    """Every epoch so far reports a macro AUC within ``ranking_se`` × its chance-level
    standard error (``auc_se``) of 0.5."""
    for h in history:
        auc, se = macro_auc(h["metrics"]), finite(h["metrics"].get("auc_se"))
        if auc is None or se is None or abs(auc - 0.5) > cfg.ranking_se * se:
            return False
    return True


def _moves(evidence: Evidence, cfg: Any) -> bool:
    """The run's weights move at a learning rate's healthy pace: the largest per-step
    change measured (``update_ratio``) at or above ``not_learning.max_update``."""
    moved = evidence.get("update_ratio")
    return isinstance(moved, (int, float)) and has(cfg, "health.not_learning.max_update") \
        and moved >= value_of(cfg, "health.not_learning.max_update")


@register
class ChanceMetric(Rule):
    """chance_metric: see :meth:`check`; its settings: :class:`ChanceConfig`."""

    name = "chance_metric"
    kind = "epoch"
    Config = ChanceConfig
    causes = (
        'learning rates 100x too low (seed 001: backbone 1e-6, head 2e-5)',
        'a learning rate so high that the outputs died (CAM logits all pushed negative)',
        'labels not aligned with images',
        'the stage trains nothing that can change its output',
    )
    fires_when = (
        'skill ≤ 0.06 (AUC ≤ 0.53) in every epoch so far and the metric rose < 0.02 in the last epoch (a slow '
        'starter climbing out of chance is left alone), unless the macro AUC beside a thresholded metric is ≥ '
        '0.85 (a grading trial called every image one class for 3 epochs at AUC 0.68 → 0.98, then reached F1 '
        '0.73); or, where a macro AUC and its chance-level standard error are reported, the AUC within 2 of those'
        ' errors of 0.5 in every epoch so far, whatever a thresholded metric says (labels drawn at random in the '
        "true shares beat the constant predictor's F1); after 2 epochs and 30 optimiser steps"
    )
    origin = 'seed 001'

    @staticmethod
    def check(cfg: ChanceConfig, history: list[dict[str, Any]], start: Start = None) -> Finding | None:
        """The primary metric's skill (:func:`skill`) at or below ``threshold`` in every epoch
        so far: no better than a model that ignores the image (AUC 0.5 for AUC stages, the
        best constant class's F1 for grading, the better trivial mask's Dice for
        segmentation). A run that once had skill and dipped is not stuck at chance, nor is one
        whose ranking is learned (:func:`ranked`). Where a macro AUC and its chance-level
        standard error are reported, a ranking within ``ranking_se`` of those errors of 0.5
        in every epoch so far is at chance whatever a thresholded primary metric says: labels
        drawn at random in the true shares beat the constant predictor's F1, so an F1 above
        it is no skill while the ranking is at chance."""
        value, best = skill(history[-1]), best_skill(history)
        if value is None or best is None:
            return None
        evidence = {"metric": history[-1]["objective"], "chance": history[-1]["metrics"]["chance"], "skill": value}
        ratios = update_ratios(history)
        if ratios:
            # What tells a learning rate too low from inputs or labels that teach nothing:
            # whether the optimiser moves the weights (the remedies read it).
            evidence["update_ratio"] = max(ratios)
        if _ranking_at_chance(cfg, history):
            m = history[-1]["metrics"]
            return ({**evidence, "auc_macro": m["auc_macro"], "auc_se": m["auc_se"]},
                    f"macro AUC within {cfg.ranking_se:g} x its chance-level standard error of 0.5 in every epoch")
        if best > cfg.threshold or rising(history, cfg.min_rise) or ranked(history[-1]["metrics"], cfg.ranked_auc):
            return None
        return (evidence, f"skill (metric - chance) / (1 - chance) <= {cfg.threshold:g}, "
                          f"up < {cfg.min_rise:g} in the last epoch")

    @classmethod
    def causes_for(cls, evidence: Evidence, cfg: Any, default: Any) -> tuple[str, ...]:
        """The causes its evidence and the run's learning rate leave open, the judgement
        :meth:`remedies` acts on: a rate orders of magnitude above the default, outputs
        that died; weights that move at a healthy pace (``update_ratio`` at or above
        ``not_learning.max_update``), not a rate too low nor one too high (the labels, or
        parts that cannot change the output); else a rate too low first."""
        too_low, too_high, labels, frozen = cls.causes
        if lr_ratio(cfg, default) >= ORDERS_OFF:
            return too_high, labels
        if _moves(evidence, cfg):
            return labels, frozen
        return too_low, frozen, labels

    @staticmethod
    def remedies(evidence: Evidence, cfg: Any, default: Any) -> list[Step]:
        if lr_ratio(cfg, default) >= ORDERS_OFF:
            return [*too_fast(evidence, cfg, default), CHECK_DATA]
        # At chance while the optimiser moves the weights at a learning rate's healthy pace:
        # the rate is not too low, and raising it is no cure (the labels or the inputs teach
        # nothing the metric rewards). The evidence cannot tell which, so nothing changes.
        if _moves(evidence, cfg):
            return [CHECK_DATA, Advice("the weights move at a healthy rate, so a learning rate too low is not the "
                                       "cause: check that the labels belong to the images and that the images differ")]
        return [raise_lr(evidence, cfg, default), CHECK_DATA]
