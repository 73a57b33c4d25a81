"""No config trains twice in a sweep: a trial whose run would repeat one already run
takes that run's result instead.

Two trials of one stage's sweep are *the same run* when their resolved configs (the
base config with the trial's keys applied; the seed is one of them, ``fit.seed``), the
dataset's fingerprint and the checkpoint they start from are equal (:func:`identity`).
Seeded runs are repeatable, so training the second would buy nothing: it happens
whenever a remedy puts a value back to the stage default, which is one of the first
points every sweep evaluates, or a searcher suggests a point again.

The searcher (:class:`medsight_ray.tune.remedy_search.RemedySearcher`) gives such a
trial the config it would have had, plus ``REUSE_KEY`` naming the earlier trial (its
*source*). The trial (:func:`medsight_ray.tune.trial.stage_trial`) then waits until the
source has ended (:func:`wait_for_source`) and reports the source's epochs to Tune as
its own (:func:`replay_rows`), each with the source's checkpoint where Ray Train kept
one, so ASHA, the health stopper, the searcher and the summary see the trial as they
saw its source, and TPE learns from it as from any trial. What it does then depends on
how the source ended:

- every epoch run, or stopped by its own run (health, early stopping): nothing left
  to do; the trial's result is the source's;
- cut by the scheduler (ASHA): the trial continues the source's run from its last
  checkpoint, training only the epochs the source did not;
- errored: the trial trains from the start, as any trial would (what the source did
  may say nothing of its config).

The searcher marks each trial that ends (:func:`mark_ended`), which is how a trial
learns that a source whose run is unfinished will not go on.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from medsight_ray.config import apply_overrides, flatten, from_dict, to_dict

#: The config key naming a trial's source (never a config key of a stage).
REUSE_KEY = "_same_as"
#: Significant digits of a float in a trial's identity: a remedy's ``lr × 0.1`` of
#: ``0.03`` is the default ``0.003`` (to 1e-16), and trains as it does.
DIGITS = 10
#: Seconds between two looks at a source that has not ended yet.
POLL_SECONDS = 1.0


def _canonical(value: Any) -> Any:
    if isinstance(value, float):
        return format(value, f".{DIGITS}g")
    if isinstance(value, list | tuple):
        return [_canonical(v) for v in value]
    return value


def identity(config_cls: type, base_config: dict[str, Any], overrides: dict[str, Any], fingerprint: str,
             init_checkpoint: str | None) -> str:
    """The identity of the run a trial would train: equal strings, same run.

    Args:
        config_cls: the stage's config class; ``base_config``: every trial's config
            before its own keys (as a dict); ``overrides``: the trial's dotted keys.
        fingerprint: the dataset's; ``init_checkpoint``: what the trial starts from.
    """
    resolved = flatten(to_dict(apply_overrides(from_dict(config_cls, base_config), overrides)))
    return json.dumps({"config": {k: _canonical(v) for k, v in sorted(resolved.items())},
                       "data": fingerprint, "init": init_checkpoint or ""}, sort_keys=True)


def _marker(train_root: str, trial_id: str) -> str:
    from medsight_ray.data.store import child

    return child(train_root, "ended", f"{trial_id}.json")


def mark_ended(train_root: str, trial_id: str, error: bool) -> None:
    """Record that a trial ended (and whether it errored) where its duplicates look."""
    from medsight_ray.data.store import write_text_at

    write_text_at(_marker(train_root, trial_id), json.dumps({"trial_id": trial_id, "error": error}))


def _ended(train_root: str, trial_id: str) -> dict[str, Any] | None:
    import pyarrow.fs as pafs

    from medsight_ray.data.store import resolve

    fs, path = resolve(_marker(train_root, trial_id))
    if fs.get_file_info(path).type != pafs.FileType.File:
        return None
    with fs.open_input_file(path) as fh:
        return json.loads(fh.read())  # written whole (write_text_at)


@dataclass(frozen=True)
class Source:
    """A source run as its duplicate finds it.

    Attributes:
        trial_id: the source trial.
        how: ``final`` (nothing left to train), ``unfinished`` (cut by the scheduler:
            continue from ``last``) or ``errored`` (train from the start).
        history: the source's epochs (the rows of its last checkpoint).
        checkpoints: ``epoch -> checkpoint URI`` of the checkpoints Ray Train kept.
        last: the newest checkpoint's URI (None when the source reported none).
    """

    trial_id: str
    how: str
    history: list[dict[str, Any]]
    checkpoints: dict[int, str]
    last: str | None


def checkpoint_dirs(run_dir: str) -> list[str]:
    """The ``checkpoint_*`` directories of a Ray Train run (local path or URI), oldest
    first (Train names them by time).

    Raises:
        OSError: the storage cannot be listed.
    """
    import pyarrow.fs as pafs

    from medsight_ray.data.store import child, resolve

    fs, root = resolve(run_dir)
    infos = fs.get_file_info(pafs.FileSelector(root, allow_not_found=True))
    return [child(run_dir, name) for name in sorted(
        i.base_name for i in infos if i.type == pafs.FileType.Directory and i.base_name.startswith("checkpoint_"))]


def _checkpoints(run_dir: str) -> dict[int, str]:
    from medsight_ray.fit.checkpoint import read_history

    # A checkpoint holds the epochs up to its own.
    return {len(read_history(uri)): uri for uri in checkpoint_dirs(run_dir)}


def find_source(train_root: str, trial_id: str) -> Source | None:
    """The source run if it has ended, else None (look again later)."""
    from medsight_ray.data.store import child
    from medsight_ray.fit.checkpoint import read_history
    from medsight_ray.fit.outcome import read_outcome

    checkpoints = _checkpoints(child(train_root, f"train-{trial_id}"))
    last = checkpoints[max(checkpoints)] if checkpoints else None
    outcome = read_outcome(last) if last else None
    history = read_history(last) if last else []
    if outcome is not None and outcome.status in ("completed", "stopped"):
        return Source(trial_id, "final", history, checkpoints, last)
    ended = _ended(train_root, trial_id)
    if ended is None:
        return None
    how = "errored" if ended.get("error") or last is None else "unfinished"
    return Source(trial_id, how, history if how == "unfinished" else [], checkpoints, last)


def wait_for_source(train_root: str, trial_id: str, sleep: Callable[[float], None] = time.sleep) -> Source:
    """Wait until the source trial has ended (it may still run beside this one)."""
    while True:
        found = find_source(train_root, trial_id)
        if found is not None:
            return found
        sleep(POLL_SECONDS)


def replay_rows(source: Source, storage_path: Callable[[str], str]) -> list[dict[str, Any]]:
    """The source's epochs as its trial reported them to Tune: the scalars of each, with
    ``checkpoint_path`` (a path on the storage's filesystem, as Ray Train reports it;
    ``storage_path`` maps a URI to it) where that epoch's checkpoint was kept."""
    rows = []
    for epoch, row in enumerate(source.history, start=1):
        scalars = {k: v for k, v in row.items() if k != "details"}
        if epoch in source.checkpoints:
            scalars["checkpoint_path"] = storage_path(source.checkpoints[epoch])
        rows.append(scalars)
    return rows
