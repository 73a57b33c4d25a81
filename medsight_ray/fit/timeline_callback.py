"""The controller's side of a run's timeline (:mod:`medsight_ray.fit.timeline`).

Ray Train 2.60 calls its internal controller and worker-group callbacks for any object
of those classes in ``RunConfig.callbacks`` ("custom workarounds built on top of internal
callbacks", as its trainer says); they are developer APIs, so nothing here may fail a run.
"""

from __future__ import annotations

import contextlib
import json
import time
from typing import Any

from ray.train.v2._internal.execution.callback import ControllerCallback, WorkerGroupCallback

from medsight_ray.fit.timeline import TIMELINE_FILE


class ControllerTimeline(ControllerCallback, WorkerGroupCallback):
    """Marks the controller's and the worker group's moments; writes them to
    ``{run_dir}/timeline.json`` when the controller finishes (``run_dir``: a local path or
    URI of the run's directory in storage). A failure to write costs the record only."""

    def __init__(self, run_dir: str) -> None:
        self.run_dir = run_dir
        self.marks: dict[str, float] = {}

    def _mark(self, name: str) -> None:
        self.marks.setdefault(name, time.time())  # a restarted group keeps its first start

    def after_controller_start(self, train_run_context: Any) -> None:
        self._mark("controller_started")

    def before_worker_group_start(self, worker_group_context: Any) -> None:
        self._mark("group_requested")

    def after_worker_group_start(self, worker_group: Any) -> None:
        self._mark("group_started")

    def after_worker_group_training_start(self, worker_group: Any) -> None:
        self._mark("training_started")

    def before_worker_group_shutdown(self, worker_group: Any) -> None:
        self.marks["group_stopping"] = time.time()

    def after_worker_group_shutdown(self, worker_group_context: Any) -> None:
        self.marks["group_stopped"] = time.time()

    def after_controller_finish(self, result: Any) -> None:
        self.marks["controller_finished"] = time.time()
        from medsight_ray.data.store import child, write_text_at

        with contextlib.suppress(OSError):  # a record of timings is never worth failing a finished run
            write_text_at(child(self.run_dir, TIMELINE_FILE), json.dumps(self.marks))
