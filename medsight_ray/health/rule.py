"""What a health rule is: its settings, its check, its causes and its remedies, in one
class, registered in one place.

A rule is a subclass of :class:`Rule` in a module of its own under
:mod:`medsight_ray.health.rules`, decorated with :func:`register`. It holds:

- ``Config``: its settings, a frozen dataclass deriving from :class:`RuleConfig`,
  each field documented in its ``Attributes:`` section (``--print-config`` shows the
  docs, ``--set health.<rule>.<field>=...`` changes them). :class:`HealthConfig
  <medsight_ray.health.config.HealthConfig>` has one field per registered rule;
- ``check``: what it reads and when it fires, with the principle the docstring states
  (a step rule sees each optimiser step, a skipped-step rule each step float16's
  GradScaler skipped, an epoch rule each epoch's history and the untrained start);
- ``causes``: the likely causes, in the seeds' terms, corrected where measured, and
  ``causes_for``: those a diagnosis' evidence and the run's config support (a verdict
  names only these: a learning rate at the stage default is no "learning rate too low");
- ``remedies``: the config changes (and advice) that cure it, sized from its evidence
  (:mod:`medsight_ray.health.remedies` holds the building blocks), and ``stops``:
  whether its evidence on this config may stop the run (a verdict with no cause in the
  config warns);
- ``fires_when`` and ``origin``: its row of the README's rule table, which is
  generated from the registry (:func:`medsight_ray.health.rules.readme_table`).

:func:`register` checks each of these when the rule's module is imported, as an
Optuna pruner checks its parameters when it is built: a rule missing a part, or whose
defaults make no sense, fails at import, not in a run.
"""

from __future__ import annotations

import dataclasses
import inspect
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar

Finding = tuple[dict[str, Any], str]  # (evidence, threshold in words)
#: The untrained model's validation metrics (measured before the first step, with
#: ``health.baseline_eval``), or None when not measured: the run's own start, which
#: epoch rules compare with rather than with a fixed chance level.
Start = dict[str, Any] | None
#: Each kind of rule (a step, a skipped step, an epoch rule) and the parameters of its
#: ``check``: what it is judged on.
CHECK_PARAMS = {"step": ["cfg", "state", "loss", "grad_norm"], "skipped_step": ["cfg", "state", "scale"],
                "epoch": ["cfg", "history", "start"]}
KINDS = tuple(CHECK_PARAMS)


@dataclass(frozen=True)
class RuleConfig:
    """One rule's settings.

    Attributes:
        enabled: turn the rule off with false.
        threshold: the rule's limit (its unit is given per rule).
        grace: epochs (for step rules, optimiser steps) before the rule may fire.
        patience: consecutive epochs (for step rules, steps) the condition must hold.
        fatal: stop the run when it fires (else only warn).
        min_steps: optimiser steps the run must have taken before an epoch rule may
            fire: on a tiny dataset an epoch is a handful of steps, too few to call a
            run stalled.
    """

    enabled: bool = True
    threshold: float = 0.0
    grace: int = 0
    patience: int = 1
    fatal: bool = True
    min_steps: int = 0

    #: The rule's name (set by :func:`register`): errors name ``health.<rule>.<field>``.
    rule: ClassVar[str] = "?"

    def __post_init__(self) -> None:
        self.validate()

    def validate(self) -> None:
        """Refuse settings no rule can mean: a negative grace or step count, a patience
        below 1, a limit that is not a finite number.

        Raises:
            ConfigError: names the setting (``health.<rule>.<field>``) and its value.
        """
        from medsight_ray.errors import ConfigError

        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                continue
            low = 1 if f.name == "patience" else 0 if f.name in ("grace", "min_steps") or isinstance(value, int) \
                else None
            finite = value == value and value not in (float("inf"), float("-inf"))
            if not finite or (low is not None and value < low):
                raise ConfigError("health rule setting out of range", where=f"health.{self.rule}.{f.name}",
                                  expected="a finite number" + (f" >= {low}" if low is not None else ""),
                                  got=repr(value))

    def patience_for(self, evidence: dict[str, Any]) -> int:
        """Consecutive epochs a finding of an epoch rule with this ``evidence`` must
        hold before the rule fires: ``patience``, unless the evidence itself is
        conclusive (a rule's config says when). Step rules count their own streaks."""
        return self.patience

    def epochs_needed(self) -> int:
        """Judged epochs (past any warm-up) an epoch rule needs before it can fire at
        all: its grace, then its patience. A run shorter than this was not judged by
        the rule."""
        return self.grace + self.patience


@dataclass
class StepState:
    """Streaks of the step rules, and the run's first gradient norms (its own scale)."""

    steps: int = 0
    #: Steps GradScaler skipped in this run, and how many in a row up to now.
    skipped: int = 0
    skip_streak: int = 0
    explode_streak: int = 0
    vanish_streak: int = 0
    early_norms: list[float] = field(default_factory=list)


class Rule:
    """One health rule (see the module docstring). Subclasses set every class attribute
    and implement :meth:`check` and :meth:`remedies` as static methods; they are never
    instantiated."""

    name: ClassVar[str]
    kind: ClassVar[str]
    Config: ClassVar[type[RuleConfig]]
    causes: ClassVar[tuple[str, ...]]
    fires_when: ClassVar[str]
    origin: ClassVar[str]

    @staticmethod
    def check(*args: Any) -> Finding | None:  # pragma: no cover - every rule overrides it
        """The rule's verdict on what it sees: (evidence, threshold in words), or None."""
        raise NotImplementedError

    @classmethod
    def causes_for(cls, evidence: Mapping[str, Any], cfg: Any, default: Any) -> tuple[str, ...]:
        """The causes among :attr:`causes` that a diagnosis with ``evidence`` on a run of
        config ``cfg`` supports (``default``: the stage's default config), most likely
        first. All of them unless the rule's evidence or the config tells them apart."""
        return cls.causes

    @classmethod
    def stops(cls, evidence: Mapping[str, Any], cfg: Any, default: Any) -> bool:
        """May a diagnosis with ``evidence`` on a run of config ``cfg`` stop the run (where
        the rule is fatal)? Yes, unless the rule's evidence leaves it no cause in the
        run's config and so no cure to offer: a stop is a promise that something is
        wrong and what to change, and such a verdict warns instead, leaving the stop to
        the rules that judge whether the run learns."""
        return True

    @staticmethod
    def remedies(evidence: Mapping[str, Any], cfg: Any, default: Any) -> list[Any]:  # pragma: no cover
        """The ordered remedies of a diagnosis with ``evidence`` on a run of config ``cfg``
        (``default``: the stage's default config)."""
        raise NotImplementedError


def supported_causes(rule: type[Rule], evidence: Mapping[str, Any], cfg: Any) -> tuple[str, ...]:
    """The causes a verdict of ``rule`` names: :meth:`Rule.causes_for` on the run's config
    ``cfg``, or every cause without one (a replay of a history).

    Raises:
        TypeError: the rule chose no cause, or one it does not declare.
    """
    if cfg is None:
        return rule.causes
    chosen = tuple(rule.causes_for(evidence, cfg, type(cfg)()))
    if not chosen or not set(chosen) <= set(rule.causes):
        raise TypeError(f"health rule {rule.name!r} chose causes {chosen!r}, expected some of its own")
    return chosen


def stops_run(rule: type[Rule], settings: RuleConfig, evidence: Mapping[str, Any], cfg: Any) -> bool:
    """Does a diagnosis of ``rule`` with ``evidence`` stop its run: the rule is fatal in
    its ``settings`` and its evidence on the run's config ``cfg`` lets it stop
    (:meth:`Rule.stops`); without a config (a replay), being fatal is enough. The monitor
    and the zoo's cut of a warn-only run decide by this one test."""
    return settings.fatal and (cfg is None or rule.stops(evidence, cfg, type(cfg)()))


#: Every registered rule by name, in the order the rules package imports them (for
#: epoch rules: most specific first).
REGISTRY: dict[str, type[Rule]] = {}


def register(rule: type[Rule]) -> type[Rule]:
    """Add ``rule`` to :data:`REGISTRY` after checking that it is whole.

    Raises:
        TypeError: a part is missing or of the wrong kind, or the name is taken.
        ValueError: its default settings are out of range (see :meth:`RuleConfig.validate`).
    """
    for attr in ("name", "kind", "Config", "causes", "fires_when", "origin"):
        if not hasattr(rule, attr):
            raise TypeError(f"health rule {rule.__name__} has no {attr}")
    if rule.name in REGISTRY:
        raise TypeError(f"health rule {rule.name!r} is registered twice ({REGISTRY[rule.name].__name__}, "
                        f"{rule.__name__})")
    if rule.kind not in KINDS:
        raise TypeError(f"health rule {rule.name!r}: kind {rule.kind!r}, expected one of {KINDS}")
    if not (dataclasses.is_dataclass(rule.Config) and issubclass(rule.Config, RuleConfig)
            and rule.Config.__dataclass_params__.frozen):  # type: ignore[attr-defined]
        raise TypeError(f"health rule {rule.name!r}: Config must be a frozen dataclass deriving from RuleConfig")
    if not rule.causes or not all(isinstance(c, str) and c for c in rule.causes):
        raise TypeError(f"health rule {rule.name!r} names no cause")
    for method in ("check", "remedies"):
        if method not in vars(rule):
            raise TypeError(f"health rule {rule.name!r} does not define {method}")
    params = list(inspect.signature(rule.check).parameters)
    if params != CHECK_PARAMS[rule.kind]:
        raise TypeError(f"health rule {rule.name!r}: check{tuple(params)}, expected a {rule.kind} rule's "
                        f"check{tuple(CHECK_PARAMS[rule.kind])}")
    rule.Config.rule = rule.name
    rule.Config()  # its defaults pass its own validation
    REGISTRY[rule.name] = rule
    return rule
