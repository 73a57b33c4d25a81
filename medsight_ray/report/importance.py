"""Hyperparameter importance from Optuna's fANOVA evaluator.

The sweep's trials are replayed into an in-memory Optuna study (their configs with the
search space's distributions, and each trial's last ``objective``: the value the
searcher itself recorded, so a health-stopped trial counts with its reported 0), and
``optuna.importance.get_param_importances`` ranks the parameters. Higher importance = more of the objective's variance
explained.
"""

from __future__ import annotations

import logging
from typing import Any

MIN_TRIALS = 3


def _distribution(spec: dict[str, Any]) -> Any:
    from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution

    if spec["dist"] == "categorical":
        return CategoricalDistribution(list(spec["choices"]))
    if spec["dist"] == "int":
        return IntDistribution(int(spec["low"]), int(spec["high"]))
    return FloatDistribution(float(spec["low"]), float(spec["high"]), log=spec["dist"] == "loguniform")


def param_importances(section: dict[str, Any], seed: int = 0) -> tuple[dict[str, float], str | None]:
    """(parameter → importance summing to 1, None) or ({}, why none could be computed)."""
    import optuna
    from optuna.importance import FanovaImportanceEvaluator, get_param_importances
    from optuna.trial import create_trial

    specs = section.get("params") or []
    if not specs:
        return {}, "the summary names no search-space parameters"
    trials = [t for t in section["trials"] if t["status"] != "errored" and "objective" in t.get("final", {})]
    if len(trials) < MIN_TRIALS:
        return {}, f"needs at least {MIN_TRIALS} trials with an objective, got {len(trials)}"
    distributions = {s["key"]: _distribution(s) for s in specs}
    optuna.logging.set_verbosity(logging.WARNING)
    study = optuna.create_study(direction="maximize")
    for trial in trials:
        params = {k: trial["config"][k] for k in distributions if k in trial["config"]}
        if len(params) < len(distributions):
            continue
        study.add_trial(create_trial(params=params, distributions=distributions,
                                     value=float(trial["final"]["objective"])))
    try:
        ranked = get_param_importances(study, evaluator=FanovaImportanceEvaluator(seed=seed), normalize=True)
    except (ValueError, RuntimeError) as err:
        return {}, f"Optuna could not rank the parameters: {err}"
    return {k: float(v) for k, v in ranked.items()}, None
