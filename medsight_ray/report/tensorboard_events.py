"""TensorBoard event files for a sweep's trials or a train run, under the run's folder.

``OUT/tensorboard/<stage>/<trial id>/`` holds one trial's per-epoch scalars (for a
``train`` run, ``OUT/tensorboard/<stage>/``): the validation metrics, the objective and
the health signals, at step = epoch, so ``tensorboard --logdir OUT/tensorboard``
compares trials as TensorBoard users expect. Written with tensorboardX (a Ray Tune
dependency), read back in the tests with TensorBoard's own event reader.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

#: The folder under ``OUT`` that holds the event files.
FOLDER = "tensorboard"


def _write(logdir: Path, history: list[dict[str, Any]]) -> None:
    from tensorboardX import SummaryWriter

    with SummaryWriter(str(logdir)) as writer:
        for row in history:
            if "epoch" not in row:
                continue
            for key, value in row.items():
                if key != "epoch" and isinstance(value, int | float) and not isinstance(value, bool):
                    writer.add_scalar(key, float(value), global_step=int(row["epoch"]))


def _slug(stage: str) -> str:
    return stage.replace("/", "-")


def write_sweep(summary: dict[str, Any], out: Path) -> Path:
    """One event folder per trial of every stage; returns ``OUT/tensorboard``."""
    root = out / FOLDER
    for section in summary.get("stages", []):
        for trial in section["trials"]:
            _write(root / _slug(section["stage"]) / trial["trial_id"], trial.get("history", []))
    return root


def write_train(summary: dict[str, Any], out: Path) -> Path:
    """One event folder per trained stage; returns ``OUT/tensorboard``."""
    root = out / FOLDER
    for run in summary.get("runs", []):
        _write(root / _slug(f"{run['task']}/{run['stage']}"), run.get("history", []))
    return root
