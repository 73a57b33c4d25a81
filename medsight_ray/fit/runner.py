"""Driver side of a stage run: check the data, build the TorchTrainer, fit, summarise.

Used by ``python -m medsight_ray.train`` directly, and by every Tune trial's driver
function, so that a stage trains the same way with or without a search around it.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field, replace
from typing import Any

from medsight_ray.config import from_dict, to_dict
from medsight_ray.data.checks import check_dataset
from medsight_ray.data.decoded import ensure_decoded, pays
from medsight_ray.data.pipeline import build_datasets
from medsight_ray.data.schema import DatasetInfo
from medsight_ray.data.stats import fingerprint, label_stats
from medsight_ray.data.store import child, list_dataset, ray_storage, read_info, resolve, uri_of
from medsight_ray.errors import ConfigError, DataError, redact, redact_all
from medsight_ray.fit.checkpoint import load_model_file, read_history, read_json
from medsight_ray.fit.outcome import Outcome, read_outcome
from medsight_ray.fit.stage import Stage
from medsight_ray.fit.timeline import TIMELINE_FILE, parts


@dataclass
class StageResult:
    """What one stage run produced.

    Attributes:
        outcome: how the run ended (the record the fit loop checkpointed, completed by
            the driver); ``status``, ``epochs_run``, ``error`` and ``diagnoses`` read it.
        checkpoint: path of the best checkpoint directory (highest ``objective``).
        best: scalar metrics of the best epoch; final: of the last epoch.
        history: per-epoch scalars and details.
        time_parts: seconds spent in each part of the run's fixed start and end, and in
            its epochs (:func:`medsight_ray.fit.timeline.parts`).
    """

    task: str
    stage: str
    config: dict[str, Any]
    outcome: Outcome
    best: dict[str, Any]
    final: dict[str, Any]
    checkpoint: str | None
    history: list[dict[str, Any]] = field(default_factory=list)
    wall_seconds: float = 0.0
    time_parts: dict[str, float] = field(default_factory=dict)

    @property
    def status(self) -> str:
        return self.outcome.status

    @property
    def epochs_run(self) -> int:
        return self.outcome.epochs_run

    @property
    def error(self) -> str | None:
        return self.outcome.error

    @property
    def diagnoses(self) -> list[dict[str, Any]]:
        return list(self.outcome.diagnoses)

    def summary(self) -> dict[str, Any]:
        """JSON-ready dict (history without per-class details)."""
        return {
            "task": self.task, "stage": self.stage, "status": self.status, "stop_reason": self.outcome.describe(),
            "epochs_run": self.epochs_run, "outcome": self.outcome.to_dict(),
            "best": self.best, "final": self.final, "checkpoint": self.checkpoint, "config": self.config,
            "wall_seconds": round(self.wall_seconds, 2), "error": self.error, "diagnoses": self.diagnoses,
            "history": [{k: v for k, v in h.items() if k != "details"} for h in self.history],
            "details": self.history[-1].get("details", {}) if self.history else {},
            "time_parts": self.time_parts,
        }


@dataclass(frozen=True)
class PreparedData:
    """A checked dataset: its info, train statistics and fingerprint, and where a sweep
    decoded it once (``decoded``: :mod:`medsight_ray.data.decoded`), if it did."""

    uri: str
    info: DatasetInfo
    stats: dict[str, Any]
    fingerprint: str
    decoded: str | None = None

    def to_dict(self) -> dict[str, Any]:
        """Plain data (to hand to remote trials)."""
        return {"uri": self.uri, "info": self.info.to_json(), "stats": self.stats, "fingerprint": self.fingerprint,
                "decoded": self.decoded}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> PreparedData:
        """Inverse of :meth:`to_dict`."""
        return cls(data["uri"], DatasetInfo.from_json(data["info"]), data["stats"], data["fingerprint"],
                   data.get("decoded"))

    def decoded_at(self, size: int, root: str) -> PreparedData:
        """This data read from its decoded mirror at ``size`` (found or written under
        ``root``, once for every run that trains at that size) where a mirror pays
        (:func:`medsight_ray.data.decoded.pays`: images stored larger than ``size``);
        else this data with no mirror, decoding every epoch. Needs Ray (the mirror is
        written by Ray tasks).

        Raises:
            DataError: an image does not decode (named); nothing is left at the mirror's
                location but what was there before.
        """
        if not pays(self.uri, size):
            return replace(self, decoded=None)
        return replace(self, decoded=ensure_decoded(self.uri, self.fingerprint, size, root))


def prepare_data(data: str, task: str, check: bool = True) -> PreparedData:
    """Check the dataset (full check unless ``check`` is False) and read its statistics.

    Raises:
        DataError: the dataset is missing, of another task, or fails the check.
    """
    files = list_dataset(data)
    info = read_info(files)
    if info.task != task:
        raise DataError("dataset is of another task family", where=str(data), expected=f"a {task!r} dataset",
                        got=f"a {info.task!r} dataset")
    if check:
        check_dataset(data, expect_task=task).raise_if_errors()
    return PreparedData(str(data), info, label_stats(files, info), fingerprint(files))


def init_from(stage: Stage, cfg: Any, checkpoint: str, data: PreparedData) -> Any:
    """Validate a previous stage's checkpoint for ``stage``; returns ``cfg`` with the
    checkpoint's model architecture (``ARCHITECTURE`` fields), which later stages must keep.

    Raises:
        ConfigError: another task, or a dataset whose fingerprint differs.
    """
    meta = load_model_file(checkpoint)
    if meta.get("task") != stage.task:
        raise ConfigError("checkpoint is of another task", where=checkpoint, expected=f"task {stage.task!r}",
                          got=repr(meta.get("task")))
    if meta.get("fingerprint") != data.fingerprint:
        raise ConfigError("dataset changed between stages", where=checkpoint,
                          expected=f"the dataset the checkpoint was trained on (fingerprint {meta.get('fingerprint')})",
                          got=f"{data.uri} (fingerprint {data.fingerprint})",
                          fix="train every stage of a pipeline on the same dataset, or restart from stage 1")
    saved = from_dict(type(cfg.model), meta["config"]["model"], "checkpoint config.model")
    fields = getattr(type(cfg.model), "ARCHITECTURE", None)
    model_cfg = replace(cfg.model, **{f: getattr(saved, f) for f in fields}) if fields else saved
    return replace(cfg, model=model_cfg)


def checkpoint_dir(checkpoint: str) -> str:
    """The checkpoint directory of ``model.pt`` or of a directory (local path or URI)."""
    return checkpoint.rsplit("/", 1)[0] if checkpoint.endswith(".pt") else checkpoint


def check_resources(cfg: Any) -> None:
    """Fail fast when the cluster cannot hold the requested workers.

    A local Ray this process started cannot grow, so a shortfall there is an error. A
    cluster it joined may add nodes (an autoscaler, KubeRay), so there the shortfall is
    said on the console and the run waits for Ray to place the workers.

    Raises:
        ConfigError: too few CPUs or GPUs on a local Ray this process started.
    """
    import ray

    from medsight_ray import console
    from medsight_ray.raylocal import started_local_ray

    total = ray.cluster_resources().get("CPU", 0)
    need = cfg.fit.workers * cfg.fit.cpus_per_worker
    gpus = ray.cluster_resources().get("GPU", 0)
    short = None
    if need > total:
        short = ConfigError("the cluster cannot hold the requested workers", where="fit.workers/cpus_per_worker",
                            expected=f"at most {total:g} CPUs in all (this cluster's total)",
                            got=f"{cfg.fit.workers} workers x {cfg.fit.cpus_per_worker:g} CPUs = {need:g}",
                            fix="lower fit.workers or fit.cpus_per_worker, or add nodes")
    elif cfg.fit.use_gpu and cfg.fit.workers > gpus:
        short = ConfigError("not enough GPUs", where="fit.use_gpu", expected=f"at most {gpus:g} GPU workers",
                            got=f"{cfg.fit.workers}")
    if short is None:
        return
    if started_local_ray():
        raise short
    console.say(f"waiting for nodes: {short.what} now ({short.got}; {short.expected}); the run starts when "
                "the cluster adds them")


def storage_path(storage: str) -> str:
    """Ray's ``storage_path`` for ``storage`` (a local path or URI): the absolute local
    path, or the path on the object store's filesystem, which goes to Ray with
    :func:`ray_storage`'s filesystem so that no key in the URI reaches Ray. Checks the
    location is writable (one small object written and deleted).

    Raises:
        ConfigError: the location cannot be written.
    """
    text = str(storage)
    fs, path = resolve(text)
    try:
        fs.create_dir(path, recursive=True)
        probe = f"{path}/.medsight_write_probe"
        with fs.open_output_stream(probe) as fh:
            fh.write(b"ok")
        fs.delete_file(probe)
    except OSError as err:
        raise ConfigError("output/storage path is not writable", where=redact(text), expected="a writable directory",
                          got=redact_all(str(err).splitlines()[0])) from None
    return path


def trainer_for(stage: Stage, cfg: Any, data: PreparedData, storage: str, name: str,
                init_checkpoint: Any = None, callbacks: list | None = None,
                fold: tuple[int, int, int] | None = None, label: str | None = None,
                continue_from: Any = None) -> Any:
    """The configured ``TorchTrainer`` of one stage run (not started).

    ``fold = (index, folds, seed)`` trains on the patients outside fold ``index`` of
    the train and val files and validates on those inside it. ``continue_from`` (a
    ``ray.train.Checkpoint`` of another run of the same config) continues that run as a
    worker restart would: from its epoch, with its optimiser, history and monitor.
    """
    from ray.train import CheckpointConfig, FailureConfig, RunConfig, ScalingConfig
    from ray.train.torch import TorchTrainer

    from medsight_ray.data.sharding import EvalExactDataConfig, keep_data_actors_on_head
    from medsight_ray.fit.loop import fit_loop
    from medsight_ray.fit.timeline_callback import ControllerTimeline

    launched = time.time()
    stats = data.stats if fold is None else label_stats(list_dataset(data.uri), data.info, fold=fold)
    rates = stage.resample_rates(cfg, stats)
    _, datasets = build_datasets(data.uri, cfg.data, rates=rates, fold=fold, seed=cfg.fit.seed,
                                 decoded=data.decoded)
    keep_data_actors_on_head()
    use_gpu = cfg.fit.use_gpu
    if use_gpu is None:
        import ray

        use_gpu = ray.cluster_resources().get("GPU", 0) >= cfg.fit.workers
    loop_config = {
        "stage_ref": stage.ref(), "task": stage.task, "stage": stage.name, "config": to_dict(cfg),
        "info": data.info.to_json(),
        "stats": stats, "fingerprint": data.fingerprint, "init_checkpoint": init_checkpoint, "label": label,
        "continue_from": continue_from, "launched": launched,
    }
    return TorchTrainer(
        fit_loop,
        train_loop_config=loop_config,
        scaling_config=ScalingConfig(num_workers=cfg.fit.workers, use_gpu=use_gpu,
                                     resources_per_worker={"CPU": cfg.fit.cpus_per_worker},
                                     placement_strategy=cfg.fit.placement),
        datasets=datasets,
        dataset_config=EvalExactDataConfig(),
        run_config=RunConfig(
            name=name, storage_path=storage_path(storage), storage_filesystem=ray_storage(storage)[1],
            callbacks=[*(callbacks or []), ControllerTimeline(child(storage, name))],
            checkpoint_config=CheckpointConfig(num_to_keep=cfg.fit.keep_checkpoints,
                                               checkpoint_score_attribute="objective", checkpoint_score_order="max"),
            failure_config=FailureConfig(max_failures=cfg.fit.max_failures),
        ),
    )


def collect(stage: Stage, cfg: Any, result: Any, started: float, storage: str) -> StageResult:
    """Turn a Train ``Result`` into a :class:`StageResult`: the outcome is the one the fit
    loop checkpointed last, completed by what only the driver saw (an error). The best
    checkpoint is named as a URI on ``storage`` (:func:`uri_of`), which opens anywhere."""
    returned = time.time()
    history: list[dict[str, Any]] = []
    outcome = None
    best_ckpt = None
    loop_marks: dict[str, Any] = {}
    if result.checkpoint is not None:
        with result.checkpoint.as_directory() as directory:
            history = read_history(directory)
            outcome = read_outcome(directory)
            loop_marks = read_json(directory, TIMELINE_FILE) or {}
    controller_marks = (read_json(uri_of(storage, result.path), TIMELINE_FILE) or {}) if result.path else {}
    if result.best_checkpoints:
        best_ckpt = max(result.best_checkpoints, key=lambda cm: cm[1].get("objective", -math.inf))[0]
    best = max(history, key=lambda h: h.get("objective", -math.inf)) if history else {}
    final = history[-1] if history else {}
    error = str(result.error).splitlines()[0][:500] if result.error else None
    outcome = (outcome or Outcome()).ended_by_driver(error)
    return StageResult(stage.task, stage.name, to_dict(cfg), outcome,
                       {k: v for k, v in best.items() if k != "details"},
                       {k: v for k, v in final.items() if k != "details"},
                       uri_of(storage, best_ckpt.path) if best_ckpt is not None else None, history,
                       time.perf_counter() - started, parts({"returned": returned}, controller_marks, loop_marks))


def run_stage(stage: Stage, cfg: Any, data: PreparedData, storage: str, name: str,
              init_checkpoint: str | None = None,
              fold: tuple[int, int, int] | None = None, label: str | None = None) -> StageResult:
    """Train one stage with Ray Train and return what it produced (see :func:`trainer_for`)."""
    from ray.train import Checkpoint

    check_resources(cfg)
    ckpt = None
    if init_checkpoint is not None:
        cfg = init_from(stage, cfg, init_checkpoint, data)
        ckpt = Checkpoint(checkpoint_dir(init_checkpoint))
    # Build the model once here: a bad backbone name, feature index or pretrained file
    # fails now with a clear message, not later inside every worker (and Tune trials
    # reach this without the CLI's own check).
    stage.build_model(cfg, data.info)
    started = time.perf_counter()
    trainer = trainer_for(stage, cfg, data, storage, name, ckpt, fold=fold, label=label)
    try:
        result = trainer.fit()
    except Exception as err:  # Train raises TrainingFailedError with the worker's error inside
        outcome = Outcome().ended_by_driver(f"{type(err).__name__}: {str(err).splitlines()[0][:500]}")
        return StageResult(stage.task, stage.name, to_dict(cfg), outcome, {}, {}, None, [],
                           time.perf_counter() - started)
    return collect(stage, cfg, result, started, storage)
