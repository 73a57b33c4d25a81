"""The one fit loop, run by every Ray Train worker for every stage.

Per epoch: apply the stage's freeze schedule, train over this worker's shard (with
gradient accumulation, clipping, AMP on GPU and a per-step LR schedule), validate
over this worker's exact share of the validation split, gather the validation arrays
from all workers, compute the epoch metrics (identically on every worker), let the
health monitor judge, and make one ``ray.train.report`` with a checkpoint from rank 0.
Early stopping and health stops are decided from gathered data, so all workers stop
together.
"""

from __future__ import annotations

import math
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from medsight_ray.config import from_dict
from medsight_ray.console import emit
from medsight_ray.data.augment import augment, epoch_generator
from medsight_ray.data.schema import DatasetInfo
from medsight_ray.fit.baseline import data_statistics
from medsight_ray.fit.checkpoint import STATE_FILE, load_model_file, read_history, read_json, save_checkpoint
from medsight_ray.fit.distributed import all_gather, gather_arrays, mean_across, world
from medsight_ray.fit.optim import Schedule, build_optimizer
from medsight_ray.fit.outcome import OUTCOME_FILE, Outcome, read_outcome
from medsight_ray.fit.stage import Context, Stage, resolve_stage
from medsight_ray.fit.stepsize import StepSize
from medsight_ray.fit.timeline import TIMELINE_FILE, LoopTimeline
from medsight_ray.health.diagnosis import not_judged_words
from medsight_ray.health.export import HealthExporter
from medsight_ray.health.monitor import HealthMonitor
from medsight_ray.metrics.inputs import input_spread, sketch


def scalar_metrics(metrics: dict[str, Any], prefix: str) -> dict[str, float]:
    """The numeric entries of ``metrics`` with ``prefix`` added (what Tune can schedule on)."""
    return {f"{prefix}{k}": float(v) for k, v in metrics.items()
            if isinstance(v, (int, float, np.floating, np.integer)) and not isinstance(v, bool)}


def objective(value: float) -> float:
    """The sanitised objective: the metric, or 0 when it is NaN/inf, so that no NaN
    ever reaches a scheduler or searcher (Ray #24809, #6659)."""
    return float(value) if math.isfinite(value) else 0.0


#: Batches whose mean loss is the run's starting loss (``train/loss_start``), and the
#: epoch's last batches whose mean output spread is ``train/score_spread``.
START_BATCHES = 5
#: The health monitor's state, checkpointed with every epoch.
HEALTH_FILE = "health.json"
#: Validation metrics shown on the console line of an epoch, after the stage's primary one.
SHOWN = ("auc_macro", "f1_macro", "dice", "pointing", "energy_ratio", "prototype_similarity")


def entropy(counts: np.ndarray | list[float]) -> float:
    """Shannon entropy (nats) of a histogram; 0 for one class or none."""
    p = np.asarray(counts, dtype=float)
    p = p[p > 0] / max(p.sum(), 1e-12)
    return float(-(p * np.log(p)).sum())


def random_batch_entropy(counts: np.ndarray | list[float], batch_size: int, draws: int = 512) -> float:
    """Expected label entropy (nats) of a batch of ``batch_size`` rows drawn at random
    from a split with class ``counts``: what a well-shuffled stream gives. A batch of 2
    can hold 2 classes at most, so its entropy is far below the split's and that is not
    a fault. Estimated from ``draws`` seeded multinomial draws (deterministic)."""
    p = np.asarray(counts, dtype=float)
    if batch_size < 2 or p.sum() <= 0:
        return 0.0
    batches = np.random.default_rng(0).multinomial(batch_size, p / p.sum(), size=draws)
    return float(np.mean([entropy(b) for b in batches]))


def update_ratio(start: torch.Tensor, params: list[nn.Parameter], steps: int) -> float:
    """How far an epoch moved the trainable weights, per optimiser step:
    ‖w_end − w_start‖ / ‖w_start‖ / ``steps`` (relative units; ``start`` is the flat
    (P,) vector of ``params`` at the epoch's start). Dividing the distance by the steps
    assumes they all point one way, so a noisy run reads lower than its true step size,
    never higher. Measured here: the stages' default recipes 0.002-0.022 a step, seed
    001's stage-1 rates (100x too low) 1.7e-5, the demo's lr 1.0 about 3. NaN for
    weights of norm 0 or non-finite."""
    end = torch.nn.utils.parameters_to_vector(params).detach()
    scale = float(start.norm())
    if not (scale > 0 and math.isfinite(scale)):
        return float("nan")
    return float((end - start).norm()) / scale / max(steps, 1)


#: Bytes of validation batches the start's statistics pass keeps to validate from, so the
#: split is read once; above it, the split is read a second time (a large validation split
#: at full resolution must not be held in memory).
START_KEEP_BYTES = 256 * 2**20


def _to_device(batch: dict[str, Any], device: torch.device) -> dict[str, torch.Tensor]:
    return {k: v.to(device, non_blocking=True) for k, v in batch.items() if isinstance(v, torch.Tensor)}


class _Trainer:
    """State of one worker's fit; the methods are the phases of an epoch."""

    def __init__(self, config: dict[str, Any]) -> None:
        import ray.train
        import ray.train.torch

        self.timeline = LoopTimeline(config.get("launched"))
        self.stage: Stage = resolve_stage(config["stage_ref"])
        self.cfg = from_dict(self.stage.config_cls, config["config"])
        self.info = DatasetInfo.from_json(config["info"])
        self.meta = {"task": self.stage.task, "stage": self.stage.name, "config": config["config"],
                     "info": config["info"], "fingerprint": config["fingerprint"]}
        self.rank, self.world_size = world()
        self.device = ray.train.torch.get_device()
        if self.cfg.fit.torch_threads > 0:
            torch.set_num_threads(self.cfg.fit.torch_threads)
        torch.manual_seed(self.cfg.fit.seed + self.rank)
        self.model = self.stage.build_model(self.cfg, self.info)
        if config.get("init_checkpoint") is not None:
            with config["init_checkpoint"].as_directory() as directory:
                state = load_model_file(directory)["state_dict"]
            self.model.load_state_dict(state)
        self.model.to(self.device)
        self.parts = self.stage.trainable_parts(self.cfg, 0)
        self.model.set_trainable(self.parts)
        self.optimizer = build_optimizer(self.stage.param_groups(self.model, self.cfg), self.cfg.optim)
        rows = config["stats"]["rows"] // max(self.world_size, 1)
        self.drop_last = rows >= self.cfg.fit.batch_size
        steps = max(rows // self.cfg.fit.batch_size if self.drop_last else 1, 1)
        self.steps_per_epoch = math.ceil(steps / self.cfg.fit.accumulate)
        self.schedule = Schedule(self.optimizer, self.cfg.optim, self.steps_per_epoch * self.cfg.fit.epochs)
        fit = self.cfg.fit
        self.use_amp = fit.amp and (self.device.type == "cuda" or fit.amp_on_cpu)
        self.amp_dtype = getattr(torch, fit.amp_dtype)
        # Loss scaling only for float16: bfloat16 has float32's range and never overflows it.
        self.scaler = torch.amp.GradScaler(self.device.type, init_scale=fit.amp_init_scale,
                                           enabled=self.use_amp and self.amp_dtype == torch.float16)
        self.skipped_steps = 0  # this epoch's steps GradScaler skipped (overflowed)
        self.step_size = StepSize(self.steps_per_epoch)  # renewed each epoch
        self.ctx = Context(self.cfg, self.info, config["stats"], self.device, self.model)
        self.stage.prepare(self.ctx)
        self.monitor = HealthMonitor(self.cfg.health, f"{self.stage.task}/{self.stage.name}",
                                     self.stage.primary_metric, self.cfg)
        self.exporter = HealthExporter(f"{self.stage.task}/{self.stage.name}",
                                       ray.train.get_context().get_experiment_name(), self.stage.primary_metric,
                                       enabled=self.rank == 0 and self.cfg.health.export_metrics)
        self.history: list[dict[str, Any]] = []
        self.outcome = Outcome()
        # How mixed a batch of a well-shuffled train split is, at this batch size.
        self.split_entropy = random_batch_entropy(config["stats"].get("class_counts") or [],
                                                  self.cfg.fit.batch_size)
        self.start_epoch = 0
        self.best = -math.inf
        self.stale = 0
        # This run's own last checkpoint (a restarted worker group), else the run it
        # continues (the same config, cut by the scheduler in another trial).
        self._resume(ray.train.get_checkpoint() or config.get("continue_from"))
        # Where this worker group runs, in the record (a restart appends its own group).
        self.outcome = self.outcome.placed(self.start_epoch + 1, all_gather(
            {"node_id": ray.get_runtime_context().get_node_id(), "node_ip": ray.util.get_node_ip_address()}))
        self.wrapped = self._wrap()
        self.label = f"[{self.stage.task}/{self.stage.name}{' ' + config['label'] if config.get('label') else ''}]"
        self.timeline.mark("model_built")
        if self.rank == 0:
            # Set-up detail: the log, not the console.
            print(f"{self.label} {self.world_size} worker(s) on {self.device}, "
                  f"{torch.get_num_threads()} torch thread(s) each", flush=True)

    def _resume(self, checkpoint: Any) -> None:
        """Continue from a reported checkpoint: after a worker failure, or another run's."""
        if checkpoint is None:
            return
        with checkpoint.as_directory() as directory:
            self.model.load_state_dict(load_model_file(directory)["state_dict"])
            state = torch.load(Path(directory) / STATE_FILE, map_location="cpu", weights_only=True)
            self.history = read_history(directory)
            monitor_state = read_json(directory, HEALTH_FILE)
            outcome = read_outcome(directory)
        if monitor_state is not None:
            self.monitor.load_state_dict(monitor_state)
        if outcome is not None:
            self.outcome = outcome
        self.optimizer.load_state_dict(state["optimizer"])
        self.schedule.load_state_dict(state["schedule"])
        self.start_epoch, self.best, self.stale = state["epoch"] + 1, state["best"], state["stale"]

    def _wrap(self) -> nn.Module:
        import ray.train.torch

        if self.world_size == 1:
            return self.model
        # DDP records which parameters need gradients when it is built, so a change
        # of the trainable set (unfreezing) rebuilds the wrapper.
        return ray.train.torch.prepare_model(self.model, move_to_device=False)

    def _set_epoch_parts(self, epoch: int) -> None:
        parts = self.stage.trainable_parts(self.cfg, epoch)
        if parts != self.parts:
            self.parts = parts
            self.model.set_trainable(parts)
            self.wrapped = self._wrap()

    def _optimizer_step(self, params: list[nn.Parameter], loss: float) -> tuple[float, bool]:
        """Unscale, clip, let the monitor judge, step, zero. Returns the total gradient
        norm (all-reduced under DDP) and whether the monitor halts the epoch."""
        self.scaler.unscale_(self.optimizer)
        if self.cfg.fit.grad_clip > 0:
            norm = float(torch.nn.utils.clip_grad_norm_(params, self.cfg.fit.grad_clip, foreach=True))
        else:
            norm = float(torch.nn.utils.get_total_norm([p.grad for p in params if p.grad is not None], foreach=True))
        scaling = self.scaler.is_enabled()
        if scaling and math.isfinite(loss) and not math.isfinite(norm):
            # Dynamic loss scaling overflows by design: GradScaler skips this step and
            # halves its scale. A skipped step is counted, never judged non-finite (a
            # non-finite loss from the forward pass still is).
            self.skipped_steps += 1
            halt = self.monitor.on_skipped_step(self.scaler.get_scale())
        else:
            halt = self.monitor.on_step(loss, norm)
            self.exporter.on_step(norm)
        if math.isfinite(norm) or scaling:
            # A non-finite gradient would corrupt the weights; GradScaler skips it itself.
            self.step_size.before(params)
            self.scaler.step(self.optimizer)
            self.scaler.update()
            self.step_size.after(params)
        self.optimizer.zero_grad(set_to_none=True)
        self.schedule.step()
        return norm, halt

    def train_epoch(self, shard: Any) -> dict[str, float]:
        fit = self.cfg.fit
        self.model.train()
        sums: dict[str, float] = {}
        n = 0
        norms: list[float] = []
        self.optimizer.zero_grad(set_to_none=True)
        params = [p for p in self.model.parameters() if p.requires_grad]
        # The trainable weights at the epoch's start: how far the optimiser moves them
        # tells a learning rate too low to learn from a slow but moving run.
        start_weights = torch.nn.utils.parameters_to_vector(params).detach().clone() if params else None
        self.step_size = StepSize(self.steps_per_epoch)
        epoch = self.ctx.epoch
        batches = shard.iter_torch_batches(batch_size=fit.batch_size, local_shuffle_buffer_size=fit.shuffle_buffer,
                                           local_shuffle_seed=fit.seed * 7919 + epoch, drop_last=self.drop_last,
                                           device=self.device)
        generator = epoch_generator(fit.seed, self.rank, epoch)
        waited = 0.0
        pending = 0  # micro-batches whose gradients wait for a step
        halt = False
        mix: list[float] = []  # each batch's label entropy (classification stages)
        batch_losses: list[float] = []
        spreads: list[float] = []  # each batch's train-mode output spread (stages that report it)
        tick = time.perf_counter()
        for batch in batches:
            waited += time.perf_counter() - tick
            self.timeline.mark("first_train_batch")
            if "label" in batch and self.split_entropy > 0:
                mix.append(entropy(torch.bincount(batch["label"].flatten().cpu()).numpy()))
            with torch.autocast(self.device.type, dtype=self.amp_dtype, enabled=self.use_amp):
                out = self.stage.train_step(self.wrapped, augment(_to_device(batch, self.device), self.cfg.data,
                                                                  generator), self.ctx)
            loss = out["loss"]
            self.scaler.scale(loss / fit.accumulate).backward()
            if "score_spread" in out:
                spreads.append(float(out.pop("score_spread")))
            for k, v in out.items():
                sums[k] = sums.get(k, 0.0) + float(v.detach())
            batch_losses.append(float(loss.detach()))
            n += 1
            pending += 1
            if pending == fit.accumulate:
                norm, halt = self._optimizer_step(params, float(loss.detach()))
                norms.append(norm)
                pending = 0
                if halt:
                    # The norm is all-reduced under DDP, so every worker halts at this step.
                    break
            tick = time.perf_counter()
        if pending and not halt:
            # The epoch's last micro-batches: their gradients summed loss / accumulate over
            # fewer than `accumulate` batches, so rescale them to the mean over those
            # batches and step. (They used to be zeroed at the next epoch, unused.)
            for p in params:
                if p.grad is not None:
                    p.grad.mul_(fit.accumulate / pending)
            norm, _ = self._optimizer_step(params, float(loss.detach()))
            norms.append(norm)
        local = {f"train/{k}": v / max(n, 1) for k, v in sums.items()}
        local["time/data_wait_s"] = waited
        finite = [n for n in norms if math.isfinite(n)]
        local["train/grad_norm"] = float(np.mean(finite)) if finite else float("nan")
        local["train/grad_norm_max"] = float(np.max(finite)) if finite else float("nan")
        local["train/steps"] = float(len(norms))
        if self.scaler.is_enabled():
            # Mixed precision's own signals: the steps GradScaler skipped and its scale.
            local["train/skipped_steps"] = float(self.skipped_steps)
            local["train/loss_scale"] = float(self.scaler.get_scale())
        self.skipped_steps = 0
        local["fit/torch_threads"] = float(torch.get_num_threads())
        finite_losses = [x for x in batch_losses if math.isfinite(x)]
        if len(finite_losses) > 1 and np.mean(finite_losses) > 0:
            # How much the loss swings between batches (coefficient of variation): batches
            # that each hold another class swing far more than mixed ones.
            local["train/loss_swing"] = float(np.std(finite_losses) / np.mean(finite_losses))
        if epoch == 0 and finite_losses:
            # The untrained model's loss (its first few batches): the scale that rules
            # relative to "the loss at the start" compare with.
            local["train/loss_start"] = float(np.mean(finite_losses[:START_BATCHES]))
        if start_weights is not None and norms:
            local["train/update_ratio"] = update_ratio(start_weights, params, len(norms))
        if self.step_size.ratios:
            local["train/step_update"] = self.step_size.mean()
        late = [x for x in spreads[-START_BATCHES:] if math.isfinite(x)]
        if late:
            # The outputs' spread at the end of the epoch (validation's comes after it,
            # in eval mode): an early batch's lively outputs say nothing of outputs
            # that died later in the epoch.
            local["train/score_spread"] = float(np.mean(late))
        if mix:
            # Mean batch label entropy over a random batch's: near 1 when batches mix
            # the classes as a shuffled split does, near 0 when each holds one class.
            local["train/label_mix"] = float(np.mean(mix)) / self.split_entropy
        return mean_across(local)

    @torch.no_grad()
    def validate(self, shard: Any) -> dict[str, Any]:
        """Metrics of the validation split: ``shard`` (read once more), or the batches of
        a pass already read (a list)."""
        self.model.eval()
        parts: dict[str, list[np.ndarray]] = {}
        sketches: list[np.ndarray] = []
        batches = shard if isinstance(shard, list) else shard.iter_torch_batches(batch_size=self.cfg.fit.batch_size,
                                                                                 device=self.device)
        for batch in batches:
            batch = _to_device(batch, self.device)
            sketches.append(sketch(batch["image"]))
            with torch.autocast(self.device.type, dtype=self.amp_dtype, enabled=self.use_amp):
                arrays = self.stage.eval_batch(self.model, batch, self.ctx)
            for k, v in arrays.items():
                parts.setdefault(k, []).append(v)
        metrics = self.stage.epoch_metrics(gather_arrays(parts), self.model, self.ctx)
        # Whether the images differ at all (the same on every worker: gathered).
        metrics["input_spread"] = input_spread(gather_arrays({"sketch": sketches})["sketch"])
        return metrics

    def measure_start(self, shard: Any) -> None:
        """Validate the untrained model once, before the first step, and give the
        monitor its metrics: the run's own start (``health.baseline_eval``)."""
        if self.start_epoch or not (self.cfg.health.enabled and self.cfg.health.baseline_eval):
            self.timeline.mark("start_measured")
            return
        self.ctx.epoch = 0
        kept: list[dict[str, Any]] = []  # the pass's batches, while they fit START_KEEP_BYTES
        held, read = 0, False

        def images() -> Iterator[torch.Tensor]:
            nonlocal held, read
            for batch in shard.iter_torch_batches(batch_size=self.cfg.fit.batch_size, device=self.device):
                if held <= START_KEEP_BYTES:
                    kept.append(batch)
                    held += sum(v.numel() * v.element_size() for v in batch.values() if isinstance(v, torch.Tensor))
                    if held > START_KEEP_BYTES:
                        kept.clear()
                yield batch["image"]
            read = True

        # With the data's BatchNorm statistics, as every later epoch is validated.
        with data_statistics(self.model, images(), self.world_size):
            # The pass that took the statistics is validated as it was kept: a second
            # pass costs a whole execution of the split (2-3 s a run on small data).
            # Every worker reads again if one must: the splits' passes go together. (A
            # model without BatchNorm takes no statistics: nothing was read.)
            fits = read and held <= START_KEEP_BYTES
            if self.world_size > 1:
                fits = all(all_gather(fits))
            metrics = self.validate(kept if fits else shard)
        self.monitor.on_start(metrics)
        self.outcome = self.outcome.started(self.monitor.start or {})
        self.timeline.mark("start_measured")
        if self.rank == 0:
            # The log, not the console: a person acts on the epochs, not on the start.
            values = scalar_metrics(metrics, "")
            keys = dict.fromkeys([self.stage.primary_metric, *SHOWN, "score_spread", "input_spread"])
            shown = " ".join(f"{k} {values[k]:.4f}" for k in keys if k in values)
            print(f"{self.label} before training | {shown}", flush=True)

    def report(self, epoch: int, metrics: dict[str, Any], extra: dict[str, Any], stop: bool,
               diagnoses: list[dict[str, Any]]) -> None:
        import ray.train

        scalars = {"epoch": epoch + 1, **extra, **scalar_metrics(metrics, "val/")}
        primary = metrics.get(self.stage.primary_metric, float("nan"))
        # A run stopped for a pathology reports the worst objective, so that TPE learns
        # to avoid its region rather than rewarding whatever it reached before.
        scalars["objective"] = 0.0 if self.monitor.should_stop() else objective(float(primary))
        details = {k: v for k, v in metrics.items() if isinstance(v, (dict, list))}
        self.history.append({**scalars, "details": {**details, "diagnoses": diagnoses}})
        state = {"epoch": epoch, "best": self.best, "stale": self.stale}
        if self.rank != 0:
            ray.train.report(scalars)
            return
        self.timeline.epoch_end()
        with tempfile.TemporaryDirectory() as tmp:
            meta = {**self.meta, "epoch": epoch + 1, "metrics": scalars, "stopped": stop}
            train_state = {**state, "optimizer": self.optimizer.state_dict(), "schedule": self.schedule.state_dict()}
            model_state = {k: v.detach().cpu() for k, v in self.model.state_dict().items()}
            # The run's outcome so far and the monitor's state travel with every checkpoint.
            records = {OUTCOME_FILE: self.outcome.to_dict(), HEALTH_FILE: self.monitor.state_dict(),
                       TIMELINE_FILE: self.timeline.marks}
            save_checkpoint(Path(tmp), model_state, meta, train_state, self.history, records)
            ray.train.report(scalars, checkpoint=ray.train.Checkpoint.from_directory(tmp))

    def _say_epoch(self, epoch: int, train: dict[str, float], metrics: dict[str, Any], new: list[Any]) -> None:
        """The epoch's console line (primary metric first, then health) and each new diagnosis."""
        for diagnosis in new:
            emit(f"{self.label} {diagnosis.message()}")
        primary = self.stage.primary_metric
        values = scalar_metrics(metrics, "")
        others = [k for k in SHOWN if k in values and k != primary]
        shown = " ".join(f"{k} {values[k]:.4f}" for k in [primary, *others] if k in values)
        fatal = [d.rule for d in self.monitor.diagnoses if d.severity == "fatal"]
        warned = sorted({d.rule for d in self.monitor.diagnoses if d.severity != "fatal"})
        health = f"STOP {', '.join(fatal)}" if fatal else f"warn {', '.join(warned)}" if warned else "ok"
        emit(f"{self.label} epoch {epoch + 1}/{self.cfg.fit.epochs} loss {train.get('train/loss', float('nan')):.4f}"
             f" | {shown} | health {health}")

    def run(self) -> None:
        import ray.train

        train_shard = ray.train.get_dataset_shard("train")
        val_shard = ray.train.get_dataset_shard("val")
        self.measure_start(val_shard)
        for epoch in range(self.start_epoch, self.cfg.fit.epochs):
            self.ctx.epoch = epoch
            self.monitor.begin_epoch(epoch)
            self._set_epoch_parts(epoch)
            start = time.perf_counter()
            train = self.train_epoch(train_shard)
            # An epoch training only part of what the last epoch trains is a warm-up,
            # which the health rules do not judge (HealthMonitor).
            train["fit/warmup"] = float(self.parts != self.stage.trainable_parts(self.cfg, self.cfg.fit.epochs - 1))
            train_s = time.perf_counter() - start
            metrics = self.validate(val_shard)
            extra = {**train, "time/epoch_s": time.perf_counter() - start, "time/train_s": train_s}
            primary = float(metrics.get(self.stage.primary_metric, float("nan")))
            if math.isfinite(primary) and primary > self.best:
                self.best, self.stale = primary, 0
            else:
                self.stale += 1
            patience = bool(self.cfg.fit.early_stop_patience) and self.stale >= self.cfg.fit.early_stop_patience
            self.monitor.on_epoch(epoch, train, metrics)
            new = self.monitor.epoch_diagnoses(epoch)
            extra.update(self.monitor.report())
            self.exporter.on_epoch(epoch, train, metrics, new, self.monitor.should_stop())
            self.outcome = self.outcome.after_epoch(epoch + 1, [d.to_dict() for d in self.monitor.diagnoses],
                                                    self.cfg.fit.epochs, early_stop=patience,
                                                    not_judged=self.monitor.not_judged())
            if self.rank == 0:
                self._say_epoch(epoch, train, metrics, new)
            stop = self.outcome.status == "stopped"
            self.report(epoch, metrics, extra, stop, [d.to_dict() for d in new])
            if stop:
                break
        if self.rank == 0 and self.outcome.stop_reason != "health" and self.outcome.not_judged:
            # A quiet monitor on a run too short for its rules is no clean bill.
            emit(f"{self.label} {not_judged_words(self.outcome.not_judged)}")


def fit_loop(config: dict[str, Any]) -> None:
    """Ray Train ``train_loop_per_worker`` for every stage (see module docstring).

    ``config`` keys: ``stage_ref`` (the stage's dotted path), ``task``, ``stage``,
    ``config`` (the stage config as a dict),
    ``info`` (dataset info JSON), ``stats`` (train label statistics), ``fingerprint``,
    ``init_checkpoint`` (a ``ray.train.Checkpoint`` of the previous stage, or None),
    ``label`` (what names the run on the console, e.g. a Tune trial id; optional),
    ``continue_from`` (a ``ray.train.Checkpoint`` of another run of this config to go on
    from, or None).
    """
    _Trainer(config).run()
