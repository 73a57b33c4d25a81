"""A run's timeline: the marks of the driver, the controller and rank 0 become the parts
of its fixed start and end."""

from __future__ import annotations

import json
from pathlib import Path

from medsight_ray.fit.timeline import LoopTimeline, parts
from medsight_ray.fit.timeline_callback import ControllerTimeline


def test_parts_are_the_spans_between_marks_and_a_missing_mark_leaves_its_part_out() -> None:
    controller = {"controller_started": 102.0, "group_requested": 103.0, "group_started": 110.5,
                  "training_started": 111.0, "group_stopping": 150.0, "group_stopped": 152.0}
    loop = {"launched": 100.0, "loop_entered": 113.0, "model_built": 113.5, "start_measured": 116.0,
            "first_train_batch": 118.0, "epoch_end": [130.0, 147.0]}
    got = parts({"returned": 155.0}, controller, loop)
    assert got == {"to loop": 13.0, "controller": 2.0, "placement+workers+datasets+process group": 7.5,
                   "worker start": 2.0,
                   "model build": 0.5, "start validation": 2.5, "first train batch": 2.0, "epochs": 29.0,
                   "last checkpoint": 3.0, "shutdown": 5.0, "total": 55.0}
    # Without the controller's record (it could not write), the loop's parts remain.
    assert set(parts({"returned": 155.0}, {}, loop)) == {"to loop", "model build", "start validation",
                                                          "first train batch", "epochs", "total"}
    # A trial Tune stopped: its driver and controller were killed; the checkpoint's marks remain.
    assert parts({}, {}, loop) == {"to loop": 13.0, "model build": 0.5, "start validation": 2.5,
                                   "first train batch": 2.0, "epochs": 29.0}


def test_the_loop_marks_each_moment_once_and_every_epoch_end() -> None:
    timeline = LoopTimeline(launched=1.0)
    timeline.mark("first_train_batch")
    first = timeline.marks["first_train_batch"]
    timeline.mark("first_train_batch")
    timeline.epoch_end()
    timeline.epoch_end()
    assert timeline.marks["first_train_batch"] == first and len(timeline.marks["epoch_end"]) == 2
    assert timeline.marks["launched"] == 1.0 and timeline.marks["loop_entered"] >= first - 1


def test_the_controller_record_is_written_when_the_controller_finishes(tmp_path: Path) -> None:
    callback = ControllerTimeline(str(tmp_path))
    callback.after_controller_start(None)
    callback.before_worker_group_start(None)
    callback.after_worker_group_start(None)
    callback.after_controller_finish(None)
    marks = json.loads((tmp_path / "timeline.json").read_text())
    assert list(marks) == ["controller_started", "group_requested", "group_started", "controller_finished"]
    assert marks["controller_started"] <= marks["group_started"] <= marks["controller_finished"]
    # Storage that cannot be written costs the record, never the run.
    (tmp_path / "file.txt").write_text("not a directory")
    ControllerTimeline(str(tmp_path / "file.txt" / "run")).after_controller_finish(None)
