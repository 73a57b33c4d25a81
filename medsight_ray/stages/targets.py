"""What a healthy run of each stage should reach on the synthetic data: the bar that
``bench/stage_targets.py`` measures the defaults against, and that the demo sweep and
the report check the best trial of each stage against. Every metric is higher-is-better.
"""

from __future__ import annotations

from typing import Any

#: "task/stage" → [(validation metric, minimum)].
STAGE_TARGETS: dict[str, list[tuple[str, float]]] = {
    "concepts/concepts": [("val/auc_macro", 0.85), ("val/energy_ratio", 1.5)],
    "concepts/diagnosis": [("val/auc_macro", 0.80), ("val/f1_macro", 0.50)],
    "grading/grading": [("val/f1_macro", 0.80)],
    "segmentation/segmentation": [("val/dice", 0.80)],
}


def check_targets(stage: str, metrics: dict[str, Any]) -> list[tuple[str, float, float | None, bool]]:
    """(metric, target, measured or None, reached) for every target of ``stage``."""
    out = []
    for key, target in STAGE_TARGETS.get(stage, []):
        value = metrics.get(key)
        measured = float(value) if isinstance(value, (int, float)) else None
        out.append((key, target, measured, measured is not None and measured >= target))
    return out
