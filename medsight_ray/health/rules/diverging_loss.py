"""The ``diverging_loss`` health rule: its settings, check, causes and remedies."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from medsight_ray.health.remedies import Advice, Evidence, Step, too_fast
from medsight_ray.health.rule import Finding, Rule, RuleConfig, Start, register
from medsight_ray.health.signals import new_best, train_losses


@dataclass(frozen=True)
class DivergingConfig(RuleConfig):
    """``diverging_loss``.

    Attributes:
        threshold: rise of the epoch's train loss over its lowest epoch so far, as a
            share of the first epoch's loss (0.25 = a quarter of the starting loss).
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
        "an epoch's train loss climbed back above its lowest epoch so far by > 0.25 of the first epoch's loss "
        "while the primary metric set no new best (a memorised train set's 0.07 → 0.17 is not divergence) "
        '(remedy: lower the lr, warm up)'
    )
    origin = 'a real 4-class set stored grouped by class'

    @staticmethod
    def check(cfg: DivergingConfig, history: list[dict[str, Any]], start: Start = None) -> Finding | None:
        """The epoch's training loss climbed back above its lowest epoch so far by more than
        ``threshold`` of the first epoch's loss, and the primary metric set no new best:
        the optimiser is climbing, not descending. Its cure is a lower learning rate, never
        a higher one."""
        losses = train_losses(history)
        if len(losses) < 2 or len(losses) != len(history):
            return None
        first, lowest, last = losses[0], min(losses[:-1]), losses[-1]
        # A training loss that rises while validation improves is noise in the loss (MixUp
        # mixes a random share of batches), not divergence. Improving means a new best: a
        # metric that only ties its best (a model stuck on one class repeats its F1 exactly)
        # is no sign of health.
        improving = new_best(history)
        # The rise is scaled by the loss at the start, the scale of the run's own descent:
        # scaled by the lowest loss, a memorised train set's 0.07 -> 0.17 would be a 140 %
        # "divergence" (measured: an overfitting run, lr decayed to nearly 0).
        rise = (last - lowest) / first if first > 0 else 0.0
        if rise > cfg.threshold and not improving:
            return ({"train_loss_first": first, "train_loss_lowest": lowest, "train_loss": last,
                     "rise": rise, "loss_swing": history[-1]["train"].get("train/loss_swing")},
                    f"train loss climbed back > {cfg.threshold:g} x its first epoch's above its lowest epoch")
        return None

    @staticmethod
    def remedies(evidence: Evidence, cfg: Any, default: Any) -> list[Step]:
        return [*too_fast(evidence, cfg, default),
                Advice("write the training rows in random order (the importers do)")]
