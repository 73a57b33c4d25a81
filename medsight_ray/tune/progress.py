"""What a sweep shows on the console: a status table when a trial's state changes,
and a progress line with an ETA when a trial ends.

Tune's own ``CLIReporter`` prints its full table every ``max_report_frequency``
seconds whether or not anything changed; here the table is printed only when a
trial starts, stops or changes state, one row per trial. Per-epoch lines and
diagnoses come from the trials themselves (:func:`medsight_ray.console.emit`).
"""

from __future__ import annotations

import math
import time
from typing import Any

from ray.tune import Callback
from ray.tune.progress_reporter import ProgressReporter

from medsight_ray.console import say
from medsight_ray.tune.reuse import REUSE_KEY
from medsight_ray.tune.trial import LINEAGE_KEY

#: Trial states in which a trial still runs or will.
LIVE = ("PENDING", "RUNNING", "PAUSED")


def _duration(seconds: float) -> str:
    seconds = int(round(seconds))
    return f"{seconds // 60}m{seconds % 60:02d}s" if seconds >= 60 else f"{seconds}s"


def _value(result: dict[str, Any], key: str) -> str:
    value = result.get(key)
    return f"{value:.4f}" if isinstance(value, float) and math.isfinite(value) else "-"


class StatusTable(ProgressReporter):
    """Tune progress reporter: a compact table, printed only when a trial's state changes.

    Args:
        stage: ``task/stage`` the sweep tunes (the table's title).
        keys: the sampled config keys shown per trial.
    """

    #: Seconds a trial may stay pending before the table shows it (a trial is pending
    #: for a moment before it runs; one that waits longer waits for resources).
    PENDING_GRACE = 15.0

    def __init__(self, stage: str, keys: list[str]) -> None:
        self.stage = stage
        self.keys = keys
        self._shown: dict[str, str] = {}
        self._pending_since: float | None = None

    def should_report(self, trials: list[Any], done: bool = False) -> bool:
        states = {t.trial_id: t.status for t in trials}
        if states == self._shown or not any(s in LIVE for s in states.values()):
            # Unchanged, or nothing live: the sweep's end-of-stage table says the rest.
            return False
        if "PENDING" in states.values():
            now = time.monotonic()
            self._pending_since = self._pending_since or now
            if now - self._pending_since < self.PENDING_GRACE:
                return False
        self._pending_since = None
        self._shown = states
        return True

    def report(self, trials: list[Any], done: bool, *sys_info: str) -> None:
        say(self.format(trials))

    def format(self, trials: list[Any]) -> str:
        """The table: one row per trial with its state, sampled values, epoch, objective and health."""
        counts: dict[str, int] = {}
        for t in trials:
            counts[t.status] = counts.get(t.status, 0) + 1
        title = ", ".join(f"{n} {s.lower()}" for s, n in sorted(counts.items()))
        short = [k.split(".")[-1][:12] for k in self.keys]
        lines = [f"-- {self.stage}: {title}",
                 f"   {'trial':<12} {'state':<10} " + " ".join(f"{s:>12}" for s in short)
                 + f" {'epoch':>5} {'objective':>9}  health"]
        for t in trials:
            result = t.last_result or {}
            config = t.config or {}
            values = " ".join(f"{_short(config.get(k)):>12}" for k in self.keys)
            fatal = result.get("health/fatal", 0.0) >= 1.0
            rules = sorted(k.rsplit("/", 1)[-1] for k, v in result.items() if k.startswith("health/rule/") and v)
            epoch = result.get("epoch")
            health = ("STOP " if fatal else "warn ") + ",".join(rules) if rules else "ok" if epoch else ""
            lines.append(f"   {t.trial_id[-12:]:<12} {t.status.lower():<10} {values} "
                         f"{epoch if epoch is not None else '-':>5} {_value(result, 'objective'):>9}  {health}")
        return "\n".join(lines)


def _short(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.3g}"
    return str(value)[:12]


class SweepProgress(Callback):
    """Tune callback: a line when a trial ends, with trials done of the total, the time
    elapsed and an ETA (the mean time per finished trial times the trials left)."""

    def __init__(self, stage: str, total: int, epochs: int) -> None:
        self.stage = stage
        self.total = total
        self.epochs = epochs
        self.started = time.perf_counter()
        self.done = 0
        self.remedies = 0

    def _ended(self, trial: Any, how: str) -> None:
        # A remedy trial comes on top of the samples: counted apart, named with its parent.
        config = getattr(trial, "config", None) or {}
        if config.get(REUSE_KEY):
            how = f"same config as {config[REUSE_KEY]}: its result reused, {how}"
        lineage = config.get(LINEAGE_KEY)
        if lineage:
            self.remedies += 1
            how = f"(remedy of {lineage['parent']}: {', '.join(lineage['overrides'])}) {how}"
        else:
            self.done += 1
        elapsed = time.perf_counter() - self.started
        left = max(self.total - self.done, 0)
        eta = _duration(elapsed / max(self.done + self.remedies, 1) * left) if left else "0s"
        extra = f" and {self.remedies} remedy trial{'s' if self.remedies > 1 else ''}" if self.remedies else ""
        say(f"-- {self.stage}: trial {trial.trial_id} {how}; {self.done}/{self.total} trials{extra} done, "
            f"{_duration(elapsed)} elapsed, ETA {eta}")

    def on_trial_complete(self, iteration: int, trials: list[Any], trial: Any, **info: Any) -> None:
        result = trial.last_result or {}
        epoch = result.get("epoch", 0)
        if result.get("health/fatal", 0.0) >= 1.0:
            how = f"stopped by health at epoch {epoch}"
        elif epoch < self.epochs:
            how = f"stopped early (ASHA) at epoch {epoch}"
        else:
            how = f"completed {epoch} epochs"
        self._ended(trial, how)

    def on_trial_error(self, iteration: int, trials: list[Any], trial: Any, **info: Any) -> None:
        self._ended(trial, "errored (see the log)")

    def on_trial_recover(self, iteration: int, trials: list[Any], trial: Any, **info: Any) -> None:
        # Its driver died (a lost node, or Train out of worker-group restarts): Tune runs
        # it again, and Ray Train resumes the run from its last checkpoint.
        epoch = (trial.last_result or {}).get("epoch", 0)
        say(f"-- {self.stage}: trial {trial.trial_id} failed after epoch {epoch} (see the log); restart "
            f"{trial.num_failures} of {trial.max_failures} resumes it from its last checkpoint")
