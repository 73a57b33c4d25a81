"""A lineage of attempts at one stage: a run stopped by a diagnosis, then its remedies.

:func:`next_attempt` picks what to try after a stopped run: the remedy of its first
fatal diagnosis (:mod:`medsight_ray.health.remedies`), skipping remedies the config
already holds and those this lineage already applied. ``train`` and
``tune`` both use it, so they heal alike; each :class:`Attempt` is one row of the
lineage that ``summary.json``, the console and the report show.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from medsight_ray.health.remedies import Advice, Remedy, next_remedy, plan


@dataclass(frozen=True)
class Attempt:
    """One attempt of a lineage and how it ended.

    Attributes:
        attempt: 0 for the run as asked, then 1, 2, ... for each remedy.
        rule: the first fatal diagnosis that stopped it (None: not stopped by health).
        epoch: the epoch of that diagnosis.
        remedy: the remedy applied to make the *next* attempt, in words (None: none).
        overrides: that remedy's changes as ``key=value``.
        advice: what the diagnosis advised that is not a config change.
        metric: the attempt's best primary metric.
        status: how the attempt ended (``completed``, ``stopped``, ``errored``).
        epochs_run: epochs the attempt trained (its compute, in trial-epochs).
        evidence: what the stopping diagnosis measured (the signal its remedy must move,
            which the next attempt's history shows).
    """

    attempt: int
    status: str
    metric: float | None = None
    epochs_run: int = 0
    rule: str | None = None
    epoch: int | None = None
    remedy: str | None = None
    overrides: tuple[str, ...] = field(default_factory=tuple)
    advice: tuple[str, ...] = field(default_factory=tuple)
    evidence: Mapping[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return {"attempt": self.attempt, "status": self.status, "metric": self.metric,
                "epochs_run": self.epochs_run, "rule": self.rule,
                "epoch": self.epoch, "remedy": self.remedy, "overrides": list(self.overrides),
                "advice": list(self.advice), "evidence": dict(self.evidence)}


def first_fatal(diagnoses: Sequence[Mapping[str, Any]]) -> Mapping[str, Any] | None:
    """The diagnosis that stopped a run: the earliest fatal one (epoch, then step)."""
    fatal = [d for d in diagnoses if d.get("severity") == "fatal"]
    return min(fatal, key=lambda d: (d["epoch"], d.get("step") or 0)) if fatal else None


def next_attempt(diagnoses: Sequence[Mapping[str, Any]], cfg: Any, default: Any,
                 tried: Sequence[str]) -> tuple[Mapping[str, Any] | None, Remedy | None, list[Advice]]:
    """What to try after a run that ended with ``diagnoses`` under ``cfg``.

    Args:
        tried: the :attr:`Remedy.why` of each remedy this lineage already applied: none
            is applied twice, whichever diagnosis asks for it again.

    Returns:
        (the stopping diagnosis, the remedy to apply or None, the advice to show).
    """
    diagnosis = first_fatal(diagnoses)
    if diagnosis is None:
        return None, None, []
    steps = plan(diagnosis["rule"], diagnosis.get("evidence") or {}, cfg, default)
    advice = [s for s in steps if isinstance(s, Advice)]
    return diagnosis, next_remedy(steps, cfg, tried), advice
