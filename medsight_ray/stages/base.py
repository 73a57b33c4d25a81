"""What a stage plugs into the shared fit loop, and the registry of stages.

A stage is one module that registers one :class:`Stage`. The fit loop owns epochs,
devices, DDP, optimiser, schedule, clipping, accumulation, checkpoints, validation
gathering and reporting; the stage owns only what differs: its model, its trainable
parts, its loss and its metrics. Composition, not a class hierarchy of loops.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from torch import nn

from medsight_ray.data.schema import DatasetInfo
from medsight_ray.errors import ConfigError
from medsight_ray.models.parts import PartsModule


@dataclass
class Context:
    """What a stage's hooks may read: config, dataset info, train label statistics,
    the device, the unwrapped model, the current epoch, and tensors the stage
    prepared (``extra``)."""

    cfg: Any
    info: DatasetInfo
    stats: dict[str, Any]
    device: torch.device
    model: PartsModule | None = None
    epoch: int = 0
    extra: dict[str, Any] = field(default_factory=dict)


class Stage:
    """Base stage: override what differs. See the stage modules for examples.

    Attributes:
        task: dataset task family this stage trains on.
        name: stage name, unique within the task.
        order: position in the task's pipeline (1, 2, 3).
        config_cls: the stage's config dataclass.
        primary_metric: metric key (without ``val/``) that selects the best epoch;
            higher is better.
    """

    task: str = ""
    name: str = ""
    order: int = 1
    config_cls: type = object
    primary_metric: str = ""

    def build_model(self, cfg: Any, info: DatasetInfo) -> PartsModule:
        """Create the model for this dataset."""
        raise NotImplementedError

    def trainable_parts(self, cfg: Any, epoch: int) -> set[str]:
        """Parts trained in ``epoch``; anything else is frozen (and not in the optimiser
        unless :meth:`param_groups` lists it for a later unfreeze)."""
        raise NotImplementedError

    def param_groups(self, model: PartsModule, cfg: Any) -> dict[str, list[nn.Parameter]]:
        """Group name → parameters; each group's lr is ``optim.lr * optim.<group>_lr_scale``."""
        raise NotImplementedError

    def resample_rates(self, cfg: Any, stats: dict[str, Any]) -> list[float] | None:
        """Expected copies per training row of each class (class-aware sampling), or None."""
        return None

    def prepare(self, ctx: Context) -> None:
        """Fill ``ctx.extra`` (class weights, pos_weight, ...) before training."""

    def train_step(self, model: nn.Module, batch: dict[str, torch.Tensor], ctx: Context) -> dict[str, torch.Tensor]:
        """Forward and loss for one micro-batch: ``loss`` (scalar with grad) and
        detached parts to log."""
        raise NotImplementedError

    def eval_batch(self, model: nn.Module, batch: dict[str, torch.Tensor], ctx: Context) -> dict[str, np.ndarray]:
        """Arrays to gather from one validation batch (rows are concatenated)."""
        raise NotImplementedError

    def epoch_metrics(self, arrays: dict[str, np.ndarray], model: PartsModule, ctx: Context) -> dict[str, Any]:
        """Validation metrics of the whole split from the gathered arrays."""
        raise NotImplementedError


REGISTRY: dict[tuple[str, str], Stage] = {}


def register(stage: Stage) -> Stage:
    """Add a stage to the registry (at import of its module)."""
    REGISTRY[(stage.task, stage.name)] = stage
    return stage


def _load_all() -> None:
    from medsight_ray.stages import concepts, diagnosis, grading, prototypes, segmentation  # noqa: F401


def _check_task(task: str) -> None:
    _load_all()
    tasks = sorted({t for t, _ in REGISTRY})
    if task not in tasks:
        raise ConfigError("unknown task", where="--task", expected=f"one of {tasks}", got=repr(task))


def get_stage(task: str, name: str | None = None) -> Stage:
    """Look a stage up; ``name`` may be omitted for single-stage tasks. Unknown
    names list the known ones."""
    _check_task(task)
    names = [n for t, n in REGISTRY if t == task]
    if name is None:
        if len(names) != 1:
            raise ConfigError("task has several stages; name one", where="--stage",
                              expected=f"one of {names}, or --pipeline", got="nothing")
        name = names[0]
    if (task, name) not in REGISTRY:
        raise ConfigError("unknown stage", where="--stage", expected=f"one of {names} for task {task!r}",
                          got=repr(name))
    return REGISTRY[(task, name)]


def pipeline(task: str) -> list[Stage]:
    """The stages of ``task`` in training order."""
    _check_task(task)
    return sorted((s for (t, _), s in REGISTRY.items() if t == task), key=lambda s: s.order)
