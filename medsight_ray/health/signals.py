"""What the epoch rules read, shared among them: one epoch's AUC and skill, the run's
best skill and its weight changes, whether the metric is rising or the ranking learned.

A history entry is one judged epoch: ``{"objective": primary metric, "metrics":
validation metrics, "train": train signals}``.
"""

from __future__ import annotations

import math
from typing import Any

from medsight_ray.health.rule import Start


def finite(value: Any) -> float | None:
    """``value`` as a float when it is a finite number, else None."""
    return float(value) if isinstance(value, (int, float)) and math.isfinite(value) else None


def macro_auc(metrics: dict[str, Any]) -> float | None:
    value = metrics.get("auc_macro")
    return float(value) if isinstance(value, (int, float)) and math.isfinite(value) else None


def skill(entry: dict[str, Any]) -> float | None:
    """The primary metric's skill in one history entry: (metric − chance) / (1 − chance),
    where the stage reports ``chance`` (the metric of a skill-less model on this split).
    0 at chance, 1 perfect, negative below chance; None when either is unknown."""
    metric, chance = finite(entry.get("objective")), finite(entry["metrics"].get("chance"))
    if metric is None or chance is None or chance >= 1:
        return None
    return (metric - chance) / (1 - chance)


def start_skill(start: Start) -> float | None:
    """The untrained model's skill (:func:`skill`) from its measured ``start`` (which
    holds its primary metric as ``objective``), or None when not measured."""
    if not start:
        return None
    return skill({"objective": start.get("objective"), "metrics": start})


def best_skill(history: list[dict[str, Any]]) -> float | None:
    """The highest :func:`skill` of any epoch so far, or None."""
    values = [v for v in (skill(h) for h in history) if v is not None]
    return max(values) if values else None


def rising(history: list[dict[str, Any]], min_rise: float) -> bool:
    """The primary metric rose by at least ``min_rise`` over the last epoch: a slow
    starter still climbing out of chance, not a run stuck there."""
    if len(history) < 2:
        return False
    last, before = finite(history[-1].get("objective")), finite(history[-2].get("objective"))
    return last is not None and before is not None and last - before >= min_rise


def ranked(metrics: dict[str, Any], ranked_auc: float) -> bool:
    """One epoch's ``metrics`` rank the images by class (macro AUC at least
    ``ranked_auc``, where the stage reports one beside a thresholded primary metric such
    as grading's F1): the model has learned, and a thresholded metric at chance is its
    output biases leaning onto one class, which ``class_collapse`` judges (measured: a
    focal, class-weighted, balanced-sampling grading trial called every image its worst
    class for 3 epochs, F1 0.07 below the constant predictor's 0.15, at AUC 0.68, 0.91,
    0.98, then reached F1 0.73 by epoch 5; the stuck trials of the same sweeps stayed at
    AUC 0.49-0.64)."""
    auc = macro_auc(metrics)
    return auc is not None and auc >= ranked_auc


def train_losses(history: list[dict[str, Any]]) -> list[float]:
    """Each epoch's finite training loss (lower is better)."""
    values = [h["train"].get("train/loss") for h in history]
    return [float(v) for v in values if isinstance(v, (int, float)) and math.isfinite(v)]


def update_ratios(history: list[dict[str, Any]]) -> list[float]:
    """Each epoch's weight change per optimiser step, where measured."""
    return [r for r in (finite(h["train"].get("train/update_ratio")) for h in history) if r is not None]


def new_best(history: list[dict[str, Any]]) -> bool:
    """The primary metric of the last epoch stands strictly above every earlier epoch's."""
    values = [finite(h.get("objective")) for h in history]
    return len(values) > 1 and None not in values and values[-1] > max(values[:-1])  # type: ignore[type-var]
