"""The ``prediction_collapse`` health rule: its settings, check, causes and remedies."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from medsight_ray.health.remedies import Evidence, Step, more_dice
from medsight_ray.health.rule import Finding, Rule, RuleConfig, Start, register
from medsight_ray.health.signals import finite, new_best


@dataclass(frozen=True)
class PredictionCollapseConfig(RuleConfig):
    """``prediction_collapse``: segmentation predicts (almost) no foreground where the
    truth has it, while the training loss says all is well (seed 004: loss -> 0 with
    all-zero predictions). A model that has not learned yet still has its starting
    loss and stays quiet.

    Attributes:
        threshold: predicted foreground share over the true foreground share below which
            the model predicts nothing (0.25 = a quarter).
        loss_fraction: train loss over the loss at the start (``train/loss_start``, the
            untrained model's first batches) below which predicting nothing has become
            cheap (0.5 = halved).
        growth: factor by which the predicted share grew over the last epoch at or
            above which the model is still learning to predict foreground (measured:
            weak-signal segmentation 0.0016 -> 0.008; seed 004's collapse 0.0009 -> 0.0001).
        settled_fraction: train loss over the loss at the start below which the loss
            has settled and no longer grows the foreground: growth or a new best then
            no longer excuses the collapse (0.1 = an order of magnitude down; measured:
            seed 004's recipe at 0.02-0.04, a healthy weak-signal run growing its
            foreground 3x an epoch at 0.20).
        grace: epochs before the rule may fire.
        patience: consecutive epochs the collapse must hold while the loss has not
            settled.
        settled_patience: consecutive epochs the collapse must hold once the loss has
            settled: one epoch is conclusive, as nothing is left to grow the foreground,
            so a collapse present from epoch 1 is named at epoch 2, inside ASHA's grace.
    """

    threshold: float = 0.25
    loss_fraction: float = 0.5
    growth: float = 2.0
    settled_fraction: float = 0.1
    grace: int = 1
    patience: int = 2
    settled_patience: int = 1

    def epochs_needed(self) -> int:
        """The grace, then a collapse once the loss settled (``settled_patience``)."""
        return self.grace + min(self.patience, self.settled_patience)

    def patience_for(self, evidence: dict[str, Any]) -> int:
        """``settled_patience`` when the evidence's train loss is below
        ``settled_fraction`` × its start, else ``patience``."""
        settled = evidence["train_loss"] < self.settled_fraction * evidence["train_loss_start"]
        return self.settled_patience if settled else self.patience


@register
class PredictionCollapse(Rule):
    """prediction_collapse: see :meth:`check`; its settings: :class:`PredictionCollapseConfig`."""

    name = "prediction_collapse"
    kind = "epoch"
    Config = PredictionCollapseConfig
    causes = (
        'BCE alone on mostly empty masks: predicting nothing is cheap (seed 004)',
        'rows without annotation given empty masks',
    )
    fires_when = (
        'segmentation predicts < 1/4 of the true foreground share while the train loss is < 1/2 of its start, 2 '
        'epochs running. A share that doubled or a metric that set a new best in the last epoch is a model '
        'growing its foreground out of the all-background start, unless the loss has settled below 1/10 of its '
        'start: then no gradient is left to grow it, and one epoch is conclusive (a collapse from epoch 1 is '
        "named at epoch 2, inside ASHA's grace)"
    )
    origin = 'seed 004'

    @staticmethod
    def check(cfg: PredictionCollapseConfig, history: list[dict[str, Any]], start: Start = None) -> Finding | None:
        """Seed 004's signature: segmentation predicts (almost) nothing where the truth has
        foreground (predicted share below ``threshold`` × the true share) while the training
        loss fell below ``loss_fraction`` × the loss at the start (``train/loss_start``; the
        first epoch's loss when that is missing). Both are relative, so the rule holds for
        any loss mix and any foreground share. A collapse goes nowhere: an epoch whose
        predicted share grew ``growth``-fold, or whose metric set a new best, belongs to a
        model still growing its foreground out of the all-background start that BCE gives
        every segmentation net (measured on real nuclei: Dice 0.16 -> 0.25 -> 0.31 with the
        predicted share 0.026 -> 0.040 -> 0.051 of a true 0.20, a healthy run). That holds
        only while the loss still has something to teach: once it has settled below
        ``settled_fraction`` × its start, the gradient left is too small to grow the
        foreground, and a new best is the collapse's last flicker (measured, seed 004's
        recipe: loss at 0.02 of its start, Dice 0 -> 0.056 -> 0.069 with 3 % of the true
        foreground predicted, the gradient norm 15× below its first epoch's)."""
        m = history[-1]["metrics"]
        pred, target = finite(m.get("pred_mean")), finite(m.get("target_mean"))
        loss = finite(history[-1]["train"].get("train/loss"))
        start = finite(history[0]["train"].get("train/loss_start", history[0]["train"].get("train/loss")))
        if pred is None or target is None or loss is None or start is None or not target > 0 or not start > 0:
            return None
        before = finite(history[-2]["metrics"].get("pred_mean")) if len(history) > 1 else None
        growing = before is not None and pred > cfg.growth * before
        learning = loss >= cfg.settled_fraction * start and (growing or new_best(history))
        if pred < cfg.threshold * target and loss < cfg.loss_fraction * start and not learning:
            return ({"pred_mean": pred, "target_mean": target, "dice": m.get("dice"), "train_loss": loss,
                     "train_loss_start": start},
                    f"pred_mean < {cfg.threshold:g} x target_mean with train loss < {cfg.loss_fraction:g} x its start")
        return None

    @staticmethod
    def remedies(evidence: Evidence, cfg: Any, default: Any) -> list[Step]:
        return more_dice(evidence, cfg, default)
