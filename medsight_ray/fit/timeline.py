"""Where a run's fixed time goes: before its first step and after its last.

A run of a few epochs on small data spends much of its wall time outside training: Ray
Train starts a controller, reserves a placement group, starts the worker actors, sets up
the dataset splits and the process group; each worker builds its model and waits for its
first batch; at the end the last checkpoint is persisted and everything is shut down.
This module marks those moments with wall-clock times (``time.time()``: the processes of
one run agree on it on one machine, and to NTP on a cluster):

- the driver: ``launched`` (the trainer is built; :func:`medsight_ray.fit.runner.trainer_for`)
  and ``returned`` (``fit()`` returned);
- Ray Train's controller, through
  :class:`medsight_ray.fit.timeline_callback.ControllerTimeline` (one of Train's own
  controller and worker-group callbacks, passed in ``RunConfig.callbacks``):
  ``controller_started``, ``group_requested``, ``group_started`` (placement group, worker
  actors, dataset splits and process group ready), ``training_started``,
  ``group_stopping``, ``group_stopped`` and ``controller_finished``; it writes them to
  ``timeline.json`` in the run's directory;
- rank 0's fit loop (:class:`LoopTimeline`): ``loop_entered``, ``model_built``,
  ``start_measured`` (the untrained model validated), ``first_train_batch``,
  ``first_val_batch``, and per epoch ``epoch_end`` (before its checkpoint is written),
  saved in every checkpoint as ``timeline.json``.

:func:`parts` turns the marks of one run into the durations ``bench/trial_start.py``
reports.
"""

from __future__ import annotations

import time
from typing import Any

TIMELINE_FILE = "timeline.json"


class LoopTimeline:
    """Rank 0's marks inside the fit loop (plain data, saved with each checkpoint)."""

    def __init__(self, launched: float | None = None) -> None:
        self.marks: dict[str, Any] = {"loop_entered": time.time(), "epoch_end": []}
        if launched is not None:
            self.marks["launched"] = launched  # the driver's mark, carried in the loop's config

    def mark(self, name: str) -> None:
        """Mark ``name`` the first time it happens."""
        self.marks.setdefault(name, time.time())

    def epoch_end(self) -> None:
        self.marks["epoch_end"].append(time.time())


def parts(driver: dict[str, float], controller: dict[str, float], loop: dict[str, Any]) -> dict[str, float]:
    """Seconds spent in each part of one run's fixed start and end, and in its epochs.

    Keys: ``controller`` (launch to controller up), ``placement+workers+datasets+process
    group`` (the worker group's start), ``worker start`` (training launched to rank 0's
    loop entered: imports and the train context), ``model build``, ``start validation``
    (``health.baseline_eval``: the untrained model's metrics), ``first train batch``,
    ``epochs`` (first train batch to the last epoch's end), ``last checkpoint`` (the last
    epoch's end to the worker group's shutdown call), ``shutdown`` (to ``fit()``
    returning) and ``total``; ``to loop`` (launch to rank 0's loop entered) is the first
    three together, and the only start part known of a run whose driver was killed (a
    trial Tune stopped: its controller's marks die with it). A part whose marks are
    missing is left out.
    """
    t = {**driver, **controller, **{k: v for k, v in loop.items() if not isinstance(v, list)}}
    ends = loop.get("epoch_end") or []
    if ends:
        t["last_epoch_end"] = ends[-1]
    spans = {
        "to loop": ("launched", "loop_entered"),
        "controller": ("launched", "controller_started"),
        "placement+workers+datasets+process group": ("group_requested", "group_started"),
        "worker start": ("training_started", "loop_entered"),
        "model build": ("loop_entered", "model_built"),
        "start validation": ("model_built", "start_measured"),
        "first train batch": ("start_measured", "first_train_batch"),
        "epochs": ("first_train_batch", "last_epoch_end"),
        "last checkpoint": ("last_epoch_end", "group_stopping"),
        "shutdown": ("group_stopping", "returned"),
        "total": ("launched", "returned"),
    }
    return {name: round(t[b] - t[a], 3) for name, (a, b) in spans.items() if a in t and b in t}
