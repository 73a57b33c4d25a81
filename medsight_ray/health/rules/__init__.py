"""The health rules, one module and one :class:`~medsight_ray.health.rule.Rule` each,
and the tables the monitor, the config and the README read, derived from them.

Each came from a seed's post-mortem or a measured failure, and each reads measured
signals. Step rules see every optimiser step's loss and total gradient norm (before
clipping); skipped-step rules see the steps float16's GradScaler skipped; epoch rules
see the epoch's validation metrics, already reduced across workers, so every worker
reaches the same verdict. A rule fires at most once per run. The causes are the
seeds' hard-won terms, corrected where measurement proved a seed wrong (seed 001's
bbox loss was not backwards).

To add a rule: a module here with its ``Config``, ``check``, ``causes``, ``remedies``
and README row in one ``@register``-ed class, and its name in :data:`ORDER` (which
imports it; for an epoch rule, the order in which a verdict names its cause).
"""

from __future__ import annotations

import importlib
from collections.abc import Callable

from medsight_ray.health.rule import REGISTRY, Finding, Rule, StepState
from medsight_ray.health.signals import skill

__all__ = ["ALL_RULES", "ORDER", "EPOCH_RULES", "KNOWLEDGE", "REGISTRY", "SKIPPED_STEP_RULES", "STEP_RULES", "Rule",
           "StepState", "readme_table", "skill"]


#: The order the monitor judges the rules in: the step rules, the skipped-step rule,
#: then the epoch rules most specific first (when several fire in one epoch, the first
#: names the cause: a collapse onto one class is also a metric at chance, but its cure
#: differs). Each name is a module here that registers the rule of that name when
#: imported; a module that registers another rule, or none, fails the check below.
ORDER = ("non_finite", "exploding_gradients", "vanishing_gradients", "loss_scale_collapse",
         "outputs_ignore_input", "oversized_updates", "dead_outputs", "overfitting", "class_collapse",
         "prediction_collapse", "prototype_collapse", "inverted_localisation", "unmixed_batches", "diverging_loss",
         "loss_falls_metric_flat", "chance_metric", "not_learning")
for _module in ORDER:
    importlib.import_module(f"{__name__}.{_module}")
if sorted(ORDER) != sorted(REGISTRY):
    raise TypeError(f"health rules registered {sorted(REGISTRY)} but ordered {sorted(ORDER)}")


def _of_kind(kind: str) -> dict[str, Callable[..., Finding | None]]:
    return {name: REGISTRY[name].check for name in ORDER if REGISTRY[name].kind == kind}


STEP_RULES = _of_kind("step")
#: Rules of the steps float16's GradScaler skipped (never seen by the step rules).
SKIPPED_STEP_RULES = _of_kind("skipped_step")
#: Epoch rules, most specific first.
EPOCH_RULES = _of_kind("epoch")
#: Every rule, by name: the step rules, the skipped-step rules, the epoch rules.
ALL_RULES: tuple[str, ...] = (*STEP_RULES, *SKIPPED_STEP_RULES, *EPOCH_RULES)
#: Each rule's likely causes.
KNOWLEDGE: dict[str, tuple[str, ...]] = {name: REGISTRY[name].causes for name in ALL_RULES}


def readme_table() -> str:
    """The README's rule table: a row per rule, from its ``fires_when`` and ``origin``,
    marked ``(warns)`` where the rule only warns by default."""
    rows = ["| rule | fires when (defaults) | from |", "| --- | --- | --- |"]
    for name in ALL_RULES:
        rule = REGISTRY[name]
        warns = "" if rule.Config().fatal else " (warns)"
        rows.append(f"| `{name}` | {rule.fires_when}{warns} | {rule.origin} |")
    return "\n".join(rows)
