"""The Tune side of the health monitor.

:class:`HealthStopper` ends a trial as soon as one of its reports carries a fatal
diagnosis (``health/fatal`` = 1). The fit loop stops such a run by itself too, so the
same monitor works without Tune; the stopper makes the decision visible to Tune and
covers trials whose loop keeps going (rules set to warn).

How the search learns: the report that carries a fatal diagnosis also sets
``objective`` to 0, the worst value, and it is the trial's last report. OptunaSearch
completes the trial's TPE study entry with that last value, so the region of the
search space that produced the pathology scores as bad and TPE samples it less.
A NaN never reaches TPE or ASHA: ``objective`` is always finite.
"""

from __future__ import annotations

from typing import Any

from ray.tune import Stopper


class HealthStopper(Stopper):
    """Stop a trial whose result has ``health/fatal`` == 1; record which and why."""

    def __init__(self) -> None:
        self.stopped: dict[str, list[str]] = {}

    def __call__(self, trial_id: str, result: dict[str, Any]) -> bool:
        if result.get("health/fatal", 0.0) >= 1.0:
            rules = sorted(k.rsplit("/", 1)[-1] for k, v in result.items() if k.startswith("health/rule/") and v)
            self.stopped[trial_id] = rules
            return True
        return False

    def stop_all(self) -> bool:
        """Never stop the whole experiment for one trial's pathology."""
        return False
