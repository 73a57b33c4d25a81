"""One Tune trial = one stage trained by a ``TorchTrainer`` (Ray 2.60's Train V2 pattern).

The trial is a Tune function trainable acting as a driver: it builds the stage's
``TorchTrainer`` with ``TuneReportCallback``, which forwards rank 0's per-epoch reports
(metrics and checkpoint path) to Tune, and fits it. When the trial ends it writes the
stage result to ``stage_result.json`` in the trial directory; a trial restarted on
resume that finds that file returns at once, so a finished trial never runs twice.

A trial whose config names a source (``REUSE_KEY``: the same run, trained earlier in
the sweep) takes the source's result instead of training (:mod:`medsight_ray.tune.reuse`).
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

from medsight_ray.config import apply_overrides, from_dict
from medsight_ray.data.store import child, resolve, write_text_at
from medsight_ray.errors import redact_all
from medsight_ray.fit.outcome import read_outcome
from medsight_ray.fit.runner import PreparedData, checkpoint_dir, collect, init_from, trainer_for
from medsight_ray.stages.registry import get_stage
from medsight_ray.tune.reuse import REUSE_KEY, replay_rows, wait_for_source

RESULT_FILE = "stage_result.json"
#: The config key of a remedy trial's lineage (:mod:`medsight_ray.tune.remedy_search`);
#: never a config key of a stage.
LINEAGE_KEY = "_lineage"


def trial_overrides(config: dict[str, Any]) -> dict[str, Any]:
    """A trial's config without its lineage and source: the dotted keys to apply to the
    base config."""
    return {k: v for k, v in config.items() if k not in (LINEAGE_KEY, REUSE_KEY)}


def _finished(result_file: str) -> bool:
    """Does the trial's folder in storage already hold its stage result?"""
    import pyarrow.fs as pafs

    from medsight_ray.data.store import resolve

    fs, path = resolve(result_file)
    return fs.get_file_info(path).type == pafs.FileType.File


def stage_trial(config: dict[str, Any], static: dict[str, Any]) -> None:
    """Tune trainable. ``config``: sampled dotted keys; ``static``: task, stage,
    base config, data, storage, the experiment's storage path and the previous stage's
    checkpoint."""
    import ray.tune
    from ray.train import Checkpoint
    from ray.tune.integration.ray_train import TuneReportCallback

    context = ray.tune.get_context()
    # The trial's folder in the experiment's storage. Written there directly, not to the
    # trial's local folder for Tune to copy, so that it reaches remote storage too, where
    # --resume reads it.
    result_file = child(static["experiment"], Path(context.get_trial_dir()).name, RESULT_FILE)
    if _finished(result_file):
        # The trial finished before the sweep was interrupted, but Tune's last saved
        # experiment state predates that: it restarts the trial on --resume. Its results
        # are complete, so it must not train (or write) again.
        return
    stage = get_stage(static["task"], static["stage"])
    cfg = apply_overrides(from_dict(stage.config_cls, static["base_config"]), trial_overrides(config))
    data = PreparedData.from_dict(static["data"])
    init = static.get("init_checkpoint")
    ckpt = None
    if init:
        cfg = init_from(stage, cfg, init, data)
        ckpt = Checkpoint(checkpoint_dir(init))
    started = time.perf_counter()
    source = wait_for_source(static["storage"], config[REUSE_KEY]) if config.get(REUSE_KEY) else None
    if source is not None and source.how != "errored":
        # The same run trained earlier in the sweep: its epochs are this trial's.
        for row in replay_rows(source, lambda uri: resolve(uri)[1]):
            ray.tune.report(row)
        if source.how == "final":
            outcome = read_outcome(source.last) if source.last else None
            # As the source's own summary has it: the history without per-class details.
            history = [{k: v for k, v in h.items() if k != "details"} for h in source.history]
            summary = {"reused_from": source.trial_id, "outcome": outcome.to_dict() if outcome else {},
                       "history": history, "wall_seconds": time.perf_counter() - started}
            write_text_at(result_file, json.dumps(redact_all(summary), default=str))
            return
    # An unfinished source (cut by the scheduler) is continued from its last checkpoint.
    continued = Checkpoint(source.last) if source is not None and source.how == "unfinished" else None
    trainer = trainer_for(stage, cfg, data, static["storage"], f"train-{context.get_trial_id()}", ckpt,
                          callbacks=[TuneReportCallback()], label=context.get_trial_id(), continue_from=continued)
    result = trainer.fit()
    summary = collect(stage, cfg, result, started, static["storage"]).summary()
    if continued is not None:
        summary["reused_from"] = source.trial_id
    # Written whole or not at all: a resumed sweep reads it to skip this trial. It lies in
    # the storage it names, so no key goes with a URI in it (the sweep reads none of them).
    write_text_at(result_file, json.dumps(redact_all(summary), default=str))
