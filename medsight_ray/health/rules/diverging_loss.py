"""The ``diverging_loss`` health rule: its settings, check, causes and remedies."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from medsight_ray.health.remedies import Advice, Evidence, Step, too_fast
from medsight_ray.health.rule import Finding, Rule, RuleConfig, Start, register
from medsight_ray.health.signals import finite, new_best, train_losses


@dataclass(frozen=True)
class DivergingConfig(RuleConfig):
    """``diverging_loss``.

    Attributes:
        threshold: rise of the epoch's train loss over its lowest epoch so far, as a
            share of the first epoch's descent still to make (its excess over the floor,
            ``train/loss_floor``; 0.25 = a quarter of it).
        grace: epochs before the rule may fire.
    """

    threshold: float = 0.25
    grace: int = 1


@register
class DivergingLoss(Rule):
    """diverging_loss: see :meth:`check`; its settings: :class:`DivergingConfig`."""

    name = "diverging_loss"
    kind = "epoch"
    Config = DivergingConfig
    causes = (
        'a learning rate too high for this data and batch size',
        (
            "batches of one or two classes (rows stored grouped by label; 'python -m medsight_ray.data check' "
            'warns), so each step pulls the model toward another class'
        ),
        'no warmup',
    )
    fires_when = (
        "an epoch's train loss, over its floor (`train/loss_floor`: what predicting the training targets exactly "
        "scores under label smoothing and MixUp), climbed back above its lowest epoch so far by > 0.25 of the "
        "first epoch's, while the primary metric set no new best (a memorised train set's 0.07 → 0.17 is not "
        "divergence; a MixUp epoch that mixed more batches raises the floor, not the excess) "
        '(remedy: lower the lr, warm up)'
    )
    origin = 'a real 4-class set stored grouped by class'

    @staticmethod
    def check(cfg: DivergingConfig, history: list[dict[str, Any]], start: Start = None) -> Finding | None:
        """The epoch's training loss climbed back above its lowest epoch so far by more than
        ``threshold`` of the first epoch's, and the primary metric set no new best: the
        optimiser is climbing, not descending. Its cure is a lower learning rate, never a
        higher one. Each loss is read as its excess over the epoch's floor
        (``train/loss_floor``, 0 where not reported), as ``overfitting`` reads it: MixUp's
        floor moves with the share of batches it mixed (measured on real digits, MixUp
        0.5: floor 0.24 -> 0.41 -> 0.30 in epochs 6-8, the raw loss 0.31 -> 0.62 -> 0.39
        while F1 held 0.94-0.99), and under label smoothing the part of the loss training
        can remove is the excess, the scale of the run's own descent."""
        losses = train_losses(history)
        if len(losses) < 2 or len(losses) != len(history):
            return None
        floors = [finite(h["train"].get("train/loss_floor")) or 0.0 for h in history]
        excess = [loss - floor for loss, floor in zip(losses, floors)]
        first, lowest, last = excess[0], min(excess[:-1]), excess[-1]
        # A training loss that rises while validation improves is noise in the loss (MixUp
        # mixes a random share of batches), not divergence. Improving means a new best: a
        # metric that only ties its best (a model stuck on one class repeats its F1 exactly)
        # is no sign of health.
        improving = new_best(history)
        # The rise is scaled by the excess at the start, the scale of the run's own descent:
        # scaled by the lowest loss, a memorised train set's 0.07 -> 0.17 would be a 140 %
        # "divergence" (measured: an overfitting run, lr decayed to nearly 0).
        rise = (last - lowest) / first if first > 0 else 0.0
        if rise > cfg.threshold and not improving:
            return ({"train_loss_first": losses[0], "train_loss_lowest": min(losses[:-1]), "train_loss": losses[-1],
                     "train_loss_floor": floors[-1], "rise": rise,
                     "loss_swing": history[-1]["train"].get("train/loss_swing")},
                    f"train loss over its floor climbed back > {cfg.threshold:g} x its first epoch's above its "
                    f"lowest epoch")
        return None

    @staticmethod
    def remedies(evidence: Evidence, cfg: Any, default: Any) -> list[Step]:
        return [*too_fast(evidence, cfg, default),
                Advice("write the training rows in random order (the importers do)")]
