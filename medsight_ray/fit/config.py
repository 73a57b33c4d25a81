"""Settings shared by every stage: the fit loop and the optimiser."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from medsight_ray.data.pipeline import PipelineConfig
from medsight_ray.health.config import HealthConfig


@dataclass(frozen=True)
class FitConfig:
    """How a stage trains.

    Attributes:
        epochs: passes over the training split.
        batch_size: rows per step per worker.
        workers: Ray Train workers (data-parallel).
        cpus_per_worker: logical CPUs each worker reserves; keep below the node's
            cores so that Ray Data's decode tasks can run beside the workers.
        placement: how the workers' placement group spreads over nodes: ``PACK``
            (Ray's default: as few nodes as fit, so gradients rarely cross the
            network), ``SPREAD`` (across nodes where it can), ``STRICT_PACK`` (one node
            or none) or ``STRICT_SPREAD`` (one worker per node, or wait for nodes).
        use_gpu: one GPU per worker; ``None`` = use GPUs if the cluster has any.
        amp: mixed precision on GPU (on CPU only with ``amp_on_cpu``).
        amp_dtype: the autocast dtype. ``float16`` (the GPU default: tensor cores of
            every CUDA GPU since Volta, T4 and V100 included, run it) with GradScaler's
            dynamic loss scaling, whose routinely overflowing steps are skipped and
            counted (``train/skipped_steps``), never judged non-finite; ``bfloat16``
            (Ampere and later) has float32's exponent range and needs no loss scaling.
        amp_on_cpu: the same mixed-precision path on CPU (``torch.autocast("cpu")`` and
            ``GradScaler("cpu")``): slower than float32 there; it exists so that the
            path GPU runs take is exercised without a GPU.
        amp_init_scale: GradScaler's starting loss scale (PyTorch's 2**16). It halves
            after an overflowing step and doubles after 2,000 clean ones.
        grad_clip: max total gradient norm (seeds: 1.0); 0 = no clipping.
        accumulate: micro-batches per optimiser step.
        early_stop_patience: stop after this many epochs without a better primary
            metric; 0 = off.
        seed: torch seed of each worker (offset by rank).
        shuffle_buffer: rows in each worker's local shuffle buffer.
        max_failures: worker-group restarts from the last checkpoint after a crash (a
            killed worker or a lost node); 0 ends the run at the first crash.
        keep_checkpoints: best checkpoints kept on storage.
        torch_threads: intra-op threads of each worker's torch. 0 = the CPUs the worker
            reserves (Ray sets ``OMP_NUM_THREADS`` from the reservation, so a worker
            reserving 1 CPU computes on one thread however many cores are idle); the
            train and tune CLIs on a local Ray they start set the machine's cores ÷
            the workers running at once (:func:`medsight_ray.raylocal.local_machine_overrides`).
    """

    epochs: int = 8
    batch_size: int = 32
    workers: int = 1
    cpus_per_worker: float = 1.0
    placement: Literal["PACK", "SPREAD", "STRICT_PACK", "STRICT_SPREAD"] = "PACK"
    use_gpu: bool | None = None
    amp: bool = True
    amp_dtype: Literal["float16", "bfloat16"] = "float16"
    amp_on_cpu: bool = False
    amp_init_scale: float = 65536.0
    grad_clip: float = 1.0
    accumulate: int = 1
    early_stop_patience: int = 0
    seed: int = 0
    shuffle_buffer: int = 256
    max_failures: int = 1
    keep_checkpoints: int = 2
    torch_threads: int = 0


@dataclass(frozen=True)
class OptimConfig:
    """Optimiser and schedule. Learning rates of parameter groups are ``lr`` times a
    named scale (``backbone_lr_scale`` ...), never an inline factor.

    Attributes:
        name: ``adamw`` or ``sgd`` (momentum 0.9).
        lr: base learning rate.
        weight_decay: decoupled weight decay (AdamW) or L2 (SGD).
        backbone_lr_scale, head_lr_scale, prototype_lr_scale: group multipliers.
        scheduler: ``cosine`` (linear warmup, cosine decay), ``onecycle`` (torch
            OneCycleLR with the group lrs as max lrs), or ``constant``.
        warmup_fraction: share of steps spent warming up (cosine).
    """

    name: Literal["adamw", "sgd"] = "adamw"
    lr: float = 1e-3
    weight_decay: float = 1e-4
    backbone_lr_scale: float = 1.0
    head_lr_scale: float = 1.0
    prototype_lr_scale: float = 1.0
    scheduler: Literal["cosine", "onecycle", "constant"] = "cosine"
    warmup_fraction: float = 0.05


@dataclass(frozen=True)
class StageConfig:
    """Fields every stage config has; stage modules add ``model``, ``loss`` and more."""

    data: PipelineConfig = PipelineConfig()
    fit: FitConfig = FitConfig()
    optim: OptimConfig = OptimConfig()
    health: HealthConfig = HealthConfig()
