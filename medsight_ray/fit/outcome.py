"""The outcome of a run: one record, written where the run ends, read everywhere else.

The fit loop keeps it up to date and checkpoints it with every epoch (``outcome.json``
beside the model), so the last checkpoint always says how far the run got and why it
ended. Only the driver can know some endings (a scheduler such as ASHA stopping a trial,
a worker group that failed); it completes the record with :meth:`Outcome.ended_by_driver`.
``train``, ``tune``, the zoo and the report read this record; none of them works the
outcome out again from epoch counts or strings.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any, Literal

from medsight_ray.fit.checkpoint import read_json

Status = Literal["running", "completed", "stopped", "errored"]
#: Why a run stopped: a fatal diagnosis, early stopping on the primary metric
#: (``fit.early_stop_patience``), the search's scheduler (ASHA), or an error.
StopReason = Literal["health", "early_stopping", "scheduler", "error"]
OUTCOME_FILE = "outcome.json"


@dataclass(frozen=True)
class Outcome:
    """How a run ended (or, while ``running``, how far it got).

    Attributes:
        status: ``running``, ``completed`` (every epoch), ``stopped`` or ``errored``.
        stop_reason: why it stopped (None when it ran to the end or still runs).
        fatal_rules: the rules whose fatal diagnoses stopped it, in the order they fired.
        diagnoses: every diagnosis of the run, as dicts, in the order they fired.
        epochs_run: epochs that finished (validated and reported).
        stop_epoch, stop_step: 1-based epoch and optimiser step of the stop (step 0 =
            at the end of the epoch).
        error: the error's first line, when errored.
        workers: where the run's worker group ran: one entry per start of the group (the
            first, and each restart after a lost worker or node), with the 1-based epoch
            it started at (``from_epoch``) and each rank's ``node_id`` and ``node_ip``.
        start: the untrained model's validation metrics, measured before the first step
            (``health.baseline_eval``; empty when not measured).
        not_judged: each health rule the run was too short to judge, with what it needs
            (``{"not_learning": "3 judged epochs and 30 steps"}``): its silence is not a
            clean bill.
    """

    status: Status = "running"
    stop_reason: StopReason | None = None
    fatal_rules: tuple[str, ...] = ()
    diagnoses: tuple[dict[str, Any], ...] = field(default_factory=tuple)
    epochs_run: int = 0
    stop_epoch: int | None = None
    stop_step: int | None = None
    error: str | None = None
    workers: tuple[dict[str, Any], ...] = field(default_factory=tuple)
    start: dict[str, Any] = field(default_factory=dict)
    not_judged: dict[str, str] = field(default_factory=dict)

    def started(self, metrics: dict[str, Any]) -> Outcome:
        """The record with the untrained model's validation ``metrics``."""
        return replace(self, start=dict(metrics))

    def placed(self, from_epoch: int, nodes: list[dict[str, Any]]) -> Outcome:
        """The record after a worker group started at 1-based ``from_epoch`` with rank
        ``i`` on ``nodes[i]`` (``node_id``, ``node_ip``)."""
        group = {"from_epoch": from_epoch, "ranks": [{"rank": i, **n} for i, n in enumerate(nodes)]}
        return replace(self, workers=(*self.workers, group))

    def after_epoch(self, epoch: int, diagnoses: list[dict[str, Any]], last_epoch: int,
                    early_stop: bool, not_judged: dict[str, str] | None = None) -> Outcome:
        """The record after 1-based ``epoch`` finished, with every diagnosis so far and
        the rules not judged so far; ``last_epoch`` is the run's planned end."""
        fatal = [d for d in diagnoses if d.get("severity") == "fatal"]
        changes: dict[str, Any] = {"diagnoses": tuple(diagnoses), "epochs_run": epoch,
                                   "not_judged": dict(not_judged or {}),
                                   "fatal_rules": tuple(dict.fromkeys(d["rule"] for d in fatal))}
        if fatal:
            first = min(fatal, key=lambda d: (d["epoch"], d.get("step") or 0))
            changes.update(status="stopped", stop_reason="health", stop_epoch=first["epoch"],
                           stop_step=first.get("step") or 0)
        elif early_stop:
            changes.update(status="stopped", stop_reason="early_stopping", stop_epoch=epoch, stop_step=0)
        elif epoch >= last_epoch:
            changes.update(status="completed")
        return replace(self, **changes)

    def ended_by_driver(self, error: str | None = None) -> Outcome:
        """Complete a record the loop left ``running``: the driver saw the run end (a
        scheduler stopped it, or, with ``error``, the worker group failed). A record the
        loop finished is kept as it is, except that an error is always recorded."""
        if error is not None and self.status != "completed":
            return replace(self, status="errored", stop_reason="error", error=error,
                           stop_epoch=self.stop_epoch or self.epochs_run + 1)
        if self.status != "running":
            return self
        return replace(self, status="stopped", stop_reason="scheduler", stop_epoch=self.epochs_run, stop_step=0)

    def placement(self) -> str:
        """Where the run ran, in words, when that is news: more than one node, or a
        worker group restarted (e.g. ``2 workers on 2 nodes; restarted from epoch 2``);
        "" for one group on one node."""
        if not self.workers:
            return ""
        ranks = self.workers[-1]["ranks"]
        nodes = {r["node_id"] for r in ranks}
        parts = [f"{len(ranks)} worker{'s' * (len(ranks) > 1)} on {len(nodes)} nodes"] if len(nodes) > 1 else []
        parts += [f"restarted from epoch {g['from_epoch']}" for g in self.workers[1:]]
        return "; ".join(parts)

    def describe(self) -> str | None:
        """The stop reason in words (None when the run completed or still runs)."""
        if self.stop_reason == "health":
            return f"health: {', '.join(self.fatal_rules)}"
        if self.stop_reason == "early_stopping":
            return "early stopping (no better primary metric for fit.early_stop_patience epochs)"
        if self.stop_reason == "scheduler":
            return f"stopped by the scheduler (ASHA) after epoch {self.epochs_run}"
        if self.stop_reason == "error":
            return f"error: {self.error}"
        return None

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        data = asdict(self)
        data["fatal_rules"], data["diagnoses"] = list(self.fatal_rules), list(self.diagnoses)
        data["workers"] = list(self.workers)
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Outcome:
        """Inverse of :meth:`to_dict`."""
        return cls(**{**data, "fatal_rules": tuple(data.get("fatal_rules", ())),
                      "diagnoses": tuple(data.get("diagnoses", ())), "workers": tuple(data.get("workers", ()))})


def read_outcome(directory: str | Path) -> Outcome | None:
    """The outcome stored in a checkpoint directory (local path or URI), or None."""
    data = read_json(directory, OUTCOME_FILE)
    return Outcome.from_dict(data) if data is not None else None
