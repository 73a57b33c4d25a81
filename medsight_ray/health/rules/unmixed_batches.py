"""The ``unmixed_batches`` health rule: its settings, check, causes and remedies."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from medsight_ray.health.remedies import Advice, Change, Evidence, Remedy, Step, value_of
from medsight_ray.health.rule import Finding, Rule, RuleConfig, Start, register


@dataclass(frozen=True)
class UnmixedBatchesConfig(RuleConfig):
    """``unmixed_batches``.

    Attributes:
        threshold: mean label entropy of the training batches over that of batches
            drawn at random from the train split at the same batch size, below which
            batches do not mix the classes (1 = as mixed as a shuffled split, 0 = one
            class per batch).
    """

    threshold: float = 0.5


@register
class UnmixedBatches(Rule):
    """unmixed_batches: see :meth:`check`; its settings: :class:`UnmixedBatchesConfig`."""

    name = "unmixed_batches"
    kind = "epoch"
    Config = UnmixedBatchesConfig
    causes = (
        (
            'rows stored grouped by label (one class folder after another): the local shuffle buffer cannot mix '
            'them, so each batch holds one or two classes'
        ),
    )
    fires_when = (
        "training batches' mean label entropy < 0.5 × that of random batches of the same size from the train "
        'split (epoch 1: rows stored grouped by label)'
    )
    origin = 'a real 4-class set stored grouped by class'

    @staticmethod
    def check(cfg: UnmixedBatchesConfig, history: list[dict[str, Any]], start: Start = None) -> Finding | None:
        """The training batches hold fewer classes than a shuffled split would give: their
        mean label entropy is below ``threshold`` × that of random batches of the same size
        (``train/label_mix``, from the fit loop; a batch of 2 is not expected to hold 4 classes)."""
        mix = history[-1]["train"].get("train/label_mix")
        if isinstance(mix, float) and math.isfinite(mix) and mix < cfg.threshold:
            # How much the loss swings between batches backs it up: batches of one class
            # pull the model one way after another.
            return ({"label_mix": mix, "loss_swing": history[-1]["train"].get("train/loss_swing")},
                    f"batch label entropy < {cfg.threshold:g} x the split's")
        return None

    @staticmethod
    def remedies(evidence: Evidence, cfg: Any, default: Any) -> list[Step]:
        buffer = value_of(cfg, "fit.shuffle_buffer")
        bigger = Change("fit.shuffle_buffer", max(buffer, min(4096, 16 * buffer)))
        return [Remedy("mix the batches with a larger shuffle buffer", (bigger,)),
                Advice("write the training rows in random order (python -m medsight_ray.data import does)")]
