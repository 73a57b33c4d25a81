"""Tune one stage over its search space: OptunaSearch (TPE) + ASHA, one TorchTrainer per trial.

Every trial reports ``objective`` (the stage's primary metric with NaN replaced by 0,
so that no NaN reaches ASHA or TPE) and ``epoch`` (ASHA's time axis).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from medsight_ray.config import apply_overrides, to_dict
from medsight_ray.data.store import ray_storage, uri_of
from medsight_ray.errors import ConfigError, redact
from medsight_ray.fit.checkpoint import read_history, read_json
from medsight_ray.fit.outcome import Outcome, read_outcome
from medsight_ray.fit.runner import PreparedData, storage_path
from medsight_ray.fit.timeline import TIMELINE_FILE, parts
from medsight_ray.tune.progress import StatusTable, SweepProgress
from medsight_ray.tune.reuse import REUSE_KEY
from medsight_ray.tune.space import SearchSpace
from medsight_ray.tune.stopper import HealthStopper
from medsight_ray.tune.trial import LINEAGE_KEY, RESULT_FILE, stage_trial, trial_overrides
from medsight_ray.tune.trust import check_trusted

#: Epochs every trial runs before ASHA may end it: a pathology present from the first
#: epoch must be named within them, or ASHA ends the trial unnamed.
ASHA_GRACE_EPOCHS = 2


@dataclass(frozen=True)
class SweepOptions:
    """How to run a sweep.

    Attributes:
        samples: trials (None = the space's ``num_samples``).
        max_concurrent: trials at once (1 is fastest on a 2-core machine).
        seed: TPE seed.
        asha: ASHA early stopping on ``objective`` by epoch.
        trial_cpus: CPUs of the trial's driver (the workers reserve their own).
        overrides: config keys set for every trial, after the space's ``fixed``.
        health_stop: end a trial at its first fatal diagnosis (the ``HealthStopper``).
        remedies: remedy trials per lineage after a fatal diagnosis (0 = none;
            :mod:`medsight_ray.tune.remedy_search`). With or without them, no run is
            trained twice (:mod:`medsight_ray.tune.reuse`).
        trial_failures: restarts of a trial whose driver died (its node was lost, or
            Train gave up after ``fit.max_failures`` worker-group restarts). A restart
            reruns the trial's driver, and Ray Train resumes its run from the run's last
            checkpoint (same name and storage), so at most the epoch in flight is lost.
        decode_once: where the stored images are larger than the trials' size
            (:func:`medsight_ray.data.decoded.pays`), decode each split once, before the
            first trial, into a mirror of raw pixels under the storage
            (:mod:`medsight_ray.data.decoded`) that every trial and epoch streams; False
            decodes the images in every epoch.
    """

    samples: int | None = None
    max_concurrent: int = 1
    seed: int = 0
    asha: bool = True
    trial_cpus: float = 0.1
    overrides: tuple[str, ...] = ()
    health_stop: bool = True
    remedies: int = 0
    trial_failures: int = 1
    decode_once: bool = True


@dataclass
class TrialRecord:
    """One trial as ``summary.json`` lists it; ``status``, ``stop_reason``, ``epochs_run``
    and ``diagnoses`` come from ``outcome``, the run's own record."""

    trial_id: str
    stage: str
    config: dict[str, Any]
    status: str
    stop_reason: str | None
    epochs_run: int
    best: dict[str, Any]
    final: dict[str, Any]
    checkpoint: str | None
    wall_seconds: float
    diagnoses: list[dict[str, Any]] = field(default_factory=list)
    history: list[dict[str, Any]] = field(default_factory=list)
    outcome: dict[str, Any] = field(default_factory=dict)
    lineage: dict[str, Any] | None = None
    reused_from: str | None = None
    time_parts: dict[str, float] = field(default_factory=dict)


def trial_outcome(summary: dict[str, Any], last_checkpoint: str | None, error: str | None) -> Outcome:
    """A trial's outcome: the one its driver wrote when the trial ended by itself, else
    (Tune stopped it: ASHA or the health stopper) the one in its last checkpoint,
    completed here by what only Tune saw."""
    if summary.get("outcome"):
        return Outcome.from_dict(summary["outcome"]).ended_by_driver(error)
    stored = read_outcome(last_checkpoint) if last_checkpoint else None
    return (stored or Outcome()).ended_by_driver(error)


def _reused_from(summary: dict[str, Any], rows: list[dict[str, Any]], config: dict[str, Any] | None) -> str | None:
    """The trial whose result this trial took: as its driver wrote, or (Tune stopped it
    while it reported that trial's epochs) as its checkpoints say. A trial whose source
    errored trained itself and took nothing."""
    source = (config or {}).get(REUSE_KEY)
    if summary or not source:
        return summary.get("reused_from")
    return source if any(f"/train-{source}/" in str(r.get("checkpoint_path") or "") for r in rows) else None


def _loop_parts(last_checkpoint: str | None) -> dict[str, float]:
    """The parts of a run's time its last checkpoint knows (rank 0's marks): all there is
    of a trial Tune stopped, whose driver and controller it killed before they wrote theirs."""
    marks = read_json(last_checkpoint, TIMELINE_FILE) if last_checkpoint else None
    return parts({}, {}, marks) if marks else {}


def _records(grid: Any, stage_name: str, storage: str) -> list[TrialRecord]:
    records = []
    for result in grid:
        trial_dir = Path(result.path)
        # What the trial's driver wrote when it ended (local or on object storage), or {}.
        summary = read_json(uri_of(storage, result.path), RESULT_FILE) or {}
        frame = result.metrics_dataframe
        rows = frame.to_dict("records") if frame is not None and len(frame) else []
        last = next((uri_of(storage, r["checkpoint_path"]) for r in reversed(rows) if r.get("checkpoint_path")),
                    None)
        error = str(result.error).splitlines()[0][:300] if result.error is not None else None
        outcome = trial_outcome(summary, last, error)
        history = summary.get("history") or (read_history(last) if last else []) or [
            {k: v for k, v in r.items() if k.startswith(("val/", "train/", "epoch", "objective"))} for r in rows]
        best_row = max(rows, key=lambda r: r.get("objective", -math.inf)) if rows else {}
        records.append(TrialRecord(
            trial_id=str((result.metrics or {}).get("trial_id") or trial_dir.name),
            stage=stage_name, config=trial_overrides(dict(result.config or {})), status=outcome.status,
            stop_reason=outcome.describe(), epochs_run=outcome.epochs_run,
            best={k: v for k, v in best_row.items() if k.startswith(("val/", "objective", "epoch"))},
            final={k: v for k, v in (rows[-1] if rows else {}).items()
                   if k.startswith(("val/", "objective", "epoch"))},
            checkpoint=uri_of(storage, best_row["checkpoint_path"]) if best_row.get("checkpoint_path") else None,
            wall_seconds=round(float((result.metrics or {}).get("time_total_s") or summary.get("wall_seconds") or 0),
                               1),
            diagnoses=list(outcome.diagnoses), history=history, outcome=outcome.to_dict(),
            lineage=(result.config or {}).get(LINEAGE_KEY), reused_from=_reused_from(summary, rows, result.config),
            time_parts=summary.get("time_parts") or _loop_parts(last)))
    return records


def base_config(space: SearchSpace, options: SweepOptions) -> Any:
    """Every trial's config before sampling: defaults, the space's ``fixed``, the overrides."""
    return apply_overrides(apply_overrides(space.stage.config_cls(), space.fixed), list(options.overrides))


def preflight(space: SearchSpace, data: PreparedData, options: SweepOptions) -> Any:
    """Checks that need no Ray, before it starts: bad keys or values, ``kfold`` (which
    only ``train`` runs), a model that does not build. Returns the base config.

    Raises:
        ConfigError: any of these.
    """
    base = base_config(space, options)
    folds = int(getattr(base, "kfold", 0) or 0)
    searched = any(p.key == "kfold" for p in space.params)
    if folds > 1 or searched:
        raise ConfigError("k-fold cross-validation is not run by tune", where="kfold",
                          expected="0 in a sweep (each trial trains on the fixed train split)",
                          got=f"kfold={folds}" + (" (searched)" if searched else ""),
                          fix="cross-validate the chosen config with python -m medsight_ray.train --set kfold=K")
    space.stage.build_model(base, data.info)
    return base


def sweep_stage(space: SearchSpace, data: PreparedData, out: str, options: SweepOptions,
                init_checkpoint: str | None = None, name: str | None = None, resume: bool = False) -> dict[str, Any]:
    """Run (or resume) the sweep of one stage; returns its summary section."""
    from ray import tune
    from ray.tune.schedulers import ASHAScheduler
    from ray.tune.search.optuna import OptunaSearch

    from medsight_ray.tune.remedy_search import Healer, RemedySearcher

    stage = space.stage
    base = base_config(space, options)
    epochs = base.fit.epochs
    name = name or f"{stage.task}-{stage.name}"
    # Ray gets the path on the storage's filesystem and the filesystem (no URI, so no
    # key in it reaches Ray); what this module opens itself is named by URI.
    root, filesystem = storage_path(out), ray_storage(out)[1]
    experiment = uri_of(out, f"{root}/{name}")
    if options.decode_once:
        # Once for the sweep (and found again by its other stages and on --resume):
        # trials then stream raw pixels, the same batches without decoding and resizing.
        data = data.decoded_at(base.data.image_size, uri_of(out, f"{root}/decoded"))
    static = {"task": stage.task, "stage": stage.name, "base_config": to_dict(base), "data": data.to_dict(),
              "storage": uri_of(out, f"{root}/train"), "experiment": experiment, "init_checkpoint": init_checkpoint}
    trainable = tune.with_resources(tune.with_parameters(stage_trial, static=static), {"cpu": options.trial_cpus})
    if resume and tune.Tuner.can_restore(f"{root}/{name}", storage_filesystem=filesystem):
        check_trusted(experiment)
        try:
            tuner = tune.Tuner.restore(f"{root}/{name}", trainable=trainable, resume_unfinished=True,
                                       resume_errored=False, storage_filesystem=filesystem)
        except Exception as err:  # whatever a damaged pickle or JSON raises inside Ray
            raise ConfigError("the sweep's saved state does not load", where=redact(experiment),
                              expected="the experiment state Ray Tune saved for this sweep",
                              got=f"{type(err).__name__}: {str(err).splitlines()[0] if str(err) else ''}",
                              fix="start the sweep again under a new --out") from None
    else:
        samples = options.samples or space.num_samples
        # Remedies (if any) and no run trained twice, around TPE.
        healer = Healer(stage.task, stage.name, to_dict(base), static["storage"], data.fingerprint, init_checkpoint)
        searcher = RemedySearcher(OptunaSearch(seed=options.seed, points_to_evaluate=[dict(p) for p in space.points]
                                               or None), healer, samples, options.remedies)
        scheduler = ASHAScheduler(time_attr="epoch", max_t=epochs, grace_period=min(ASHA_GRACE_EPOCHS, epochs),
                                  reduction_factor=2) if options.asha else None
        tuner = tune.Tuner(
            trainable,
            param_space=space.param_space(),
            tune_config=tune.TuneConfig(metric="objective", mode="max", search_alg=searcher, scheduler=scheduler,
                                        # Remedy trials come on top of the samples;
                                        # the searcher says when it is finished.
                                        num_samples=samples * (1 + options.remedies),
                                        max_concurrent_trials=options.max_concurrent,
                                        # Never reuse a trial's driver: a trial that ASHA
                                        # or the health stopper stops is inside Train's
                                        # fit(), which no thread can interrupt. Only
                                        # killing its actor ends that Train run; a reused
                                        # actor kept it training, blocked on a report
                                        # nobody read, and the sweep hung.
                                        reuse_actors=False),
            run_config=tune.RunConfig(
                name=name, storage_path=root, storage_filesystem=filesystem,
                stop=HealthStopper() if options.health_stop else None,
                failure_config=tune.FailureConfig(max_failures=options.trial_failures),
                progress_reporter=StatusTable(f"{stage.task}/{stage.name}", [p.key for p in space.params]),
                callbacks=[SweepProgress(f"{stage.task}/{stage.name}", options.samples or space.num_samples,
                                         epochs)]),
        )
    grid = tuner.fit()
    records = _records(grid, stage.name, out)
    healthy = [r for r in records if r.status != "errored" and r.checkpoint and not r.outcome.get("fatal_rules")]
    best = max(healthy, key=lambda r: r.best.get("objective", -math.inf)) if healthy else None
    return {"stage": f"{stage.task}/{stage.name}", "space": space.path, "experiment": experiment,
            "base_config": to_dict(base),
            "primary_metric": f"val/{stage.primary_metric}", "bounds": space.bounds(),
            "params": [asdict(p) for p in space.params],
            "trials": [asdict(r) for r in records], "best": asdict(best) if best else None}
