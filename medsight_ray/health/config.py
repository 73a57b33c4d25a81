"""Health monitor settings: one field per registered rule (its ``Config``: on/off, its
limits, each a named setting with its unit, grace, patience and whether it stops the
run), and the monitor's own switches.

Every number a rule compares against is a field of its ``Config``, documented with its
unit, so ``--print-config`` lists it and ``--set health.<rule>.<name>=...`` changes it;
no rule reads a module constant. Defaults come from the seeds: vanishing gradients below
1e-7 and exploding above 100 (seed 000's gradient monitor), prototype collapse at mean
pairwise cosine 0.8 (seed 000). Rules that read the data's scale read it relative to
the data: class shares against the true shares, losses against the loss at the start,
metrics against their chance level on the split.

:class:`HealthConfig` is generated from the rule registry
(:mod:`medsight_ray.health.rules`), so a rule's settings live with its check.
"""

from __future__ import annotations

import dataclasses

from medsight_ray.health.rule import RuleConfig
from medsight_ray.health.rules import ALL_RULES, REGISTRY

__all__ = ["HealthConfig", "RuleConfig"]

_DOC = """Every rule of the monitor (each with its own settings class), and its switches.

    Attributes:
        enabled: false turns the whole monitor off.
        export_metrics: false keeps the monitor but stops the ``medsight_*`` Ray metrics.
        baseline_eval: validate the untrained model once, before the first step (one
            validation pass a run): the rules compare the run with its own start (its
            AUC, the spread of its outputs, its skill) rather than with a fixed chance
            level, and the record keeps it as ``start``.
    """

HealthConfig = dataclasses.make_dataclass(
    "HealthConfig",
    [("enabled", bool, True), ("export_metrics", bool, True), ("baseline_eval", bool, True),
     *[(name, REGISTRY[name].Config, dataclasses.field(default=REGISTRY[name].Config())) for name in ALL_RULES]],
    frozen=True, namespace={"__doc__": _DOC},
)
HealthConfig.__module__ = __name__
