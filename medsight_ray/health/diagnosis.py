"""A diagnosis is data: what fired, on what evidence, and what to do about it."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

SEVERITIES = ("warn", "fatal")


@dataclass(frozen=True)
class Diagnosis:
    """One finding of the health monitor.

    Attributes:
        rule: the rule's name, e.g. ``prototype_collapse``.
        severity: ``warn`` (reported) or ``fatal`` (the run is stopped).
        stage: ``task/stage``.
        epoch: 1-based epoch the rule fired in; step: optimiser step (0 if per epoch).
        evidence: the measured values that made it fire.
        threshold: the configured limit it crossed, in words.
        causes: likely causes, in the seeds' hard-won terms.
        remedies: what to change.
    """

    rule: str
    severity: str
    stage: str
    epoch: int
    step: int
    evidence: dict[str, Any]
    threshold: str
    causes: tuple[str, ...] = field(default_factory=tuple)
    remedies: tuple[str, ...] = field(default_factory=tuple)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        data = asdict(self)
        data["causes"], data["remedies"] = list(self.causes), list(self.remedies)
        return data

    def message(self) -> str:
        """One paragraph for the console."""
        evidence = ", ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in self.evidence.items())
        return (f"[{self.severity.upper()}] {self.rule} in {self.stage} at epoch {self.epoch}"
                + (f" step {self.step}" if self.step else "") + f": {evidence} ({self.threshold}). "
                f"Likely: {'; '.join(self.causes)}. Remedy: {'; '.join(self.remedies)}.")


def group_not_judged(not_judged: dict[str, str]) -> dict[str, list[str]]:
    """The rules a run was too short to judge (``{rule: what it needs}``, from
    :meth:`HealthMonitor.not_judged`) grouped by what they need, in rule order:
    ``{"3 judged epochs and 30 steps": ["chance_metric", "not_learning"], ...}``."""
    groups: dict[str, list[str]] = {}
    for rule, needs in not_judged.items():
        groups.setdefault(needs, []).append(rule)
    return groups


def not_judged_words(not_judged: dict[str, str]) -> str:
    """One line for a person: ``not judged (run too short): chance_metric, not_learning
    (each needs 3 judged epochs and 30 steps); overfitting (needs 3 judged epochs)``;
    "" when every rule could judge."""
    parts = [f"{', '.join(rules)} ({'each needs' if len(rules) > 1 else 'needs'} {needs})"
             for needs, rules in group_not_judged(not_judged).items()]
    return f"not judged (run too short): {'; '.join(parts)}" if parts else ""
