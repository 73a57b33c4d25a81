"""What a stage plugs into the shared fit loop: the stage protocol.

A stage is one module of :mod:`medsight_ray.stages` that registers one :class:`Stage`.
The fit loop owns epochs, devices, DDP, optimiser, schedule, clipping, accumulation,
checkpoints, validation gathering and reporting; the stage owns only what differs: its
model, its trainable parts, its loss and its metrics. Composition, not a class
hierarchy of loops.

Imports go one way (stages → fit), so the fit loop never imports a stage module by
name: the driver hands each worker the stage's dotted path (:meth:`Stage.ref`), and
:func:`resolve_stage` imports it there.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
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
        detached parts to log. Stages with probability outputs add ``score_spread``
        (:func:`train_spread`): the health monitor tells dead outputs from an
        eval-mode artefact with it."""
        raise NotImplementedError

    def eval_batch(self, model: nn.Module, batch: dict[str, torch.Tensor], ctx: Context) -> dict[str, np.ndarray]:
        """Arrays to gather from one validation batch (rows are concatenated)."""
        raise NotImplementedError

    def epoch_metrics(self, arrays: dict[str, np.ndarray], model: PartsModule, ctx: Context) -> dict[str, Any]:
        """Validation metrics of the whole split from the gathered arrays."""
        raise NotImplementedError

    def ref(self) -> str:
        """The stage's dotted path, ``module:Class``, for :func:`resolve_stage`."""
        return f"{type(self).__module__}:{type(self).__qualname__}"


def train_spread(probs: torch.Tensor) -> torch.Tensor:
    """How much a training batch's outputs depend on the image, in train mode: the
    standard deviation across the batch of each output's probability, (B, K) → the
    largest over the K outputs (probability units; 0 means constant outputs, higher is
    livelier, not better). Detached.

    Why beside the validation ``score_spread``: validation runs in eval mode, where
    BatchNorm uses running statistics. After a few steps at a high learning rate those
    still hold mostly their initial values, so eval-mode outputs can saturate to one
    answer (measured: 4 steps at lr 0.03, validation loss 1228 against a train loss of
    1.8) while the model itself is alive and recovers. Outputs that died are constant in
    both modes."""
    probs = probs.detach().float().reshape(probs.shape[0], -1)
    if probs.shape[0] < 2:
        return torch.tensor(float("nan"))
    return probs.std(dim=0).max()


def resolve_stage(ref: str) -> Stage:
    """The stage at a dotted path ``module:Class`` (what :meth:`Stage.ref` returns).

    Raises:
        ConfigError: the module or class does not exist, or is not a :class:`Stage`.
    """
    module_name, _, class_name = ref.partition(":")
    try:
        cls = getattr(importlib.import_module(module_name), class_name)
    except (ImportError, AttributeError, ValueError) as err:
        raise ConfigError("stage not found", where=ref, expected="module:Class of a Stage subclass",
                          got=f"{type(err).__name__}: {err}") from None
    if not (isinstance(cls, type) and issubclass(cls, Stage)):
        raise ConfigError("not a stage", where=ref, expected="a Stage subclass", got=repr(cls))
    return cls()


def per_image_loss(loss: Callable[[slice], torch.Tensor], images: int) -> np.ndarray:
    """A validation loss image by image: ``loss(slice(i, i + 1))`` is the scalar loss of
    image ``i`` alone, for losses that reduce over the batch (Dice, a contrastive loss).
    Returns (images,) float64, lower is better. Per image, so that the epoch's loss comes
    with its standard error (:func:`validation_loss`); validation batches are small and
    this costs one loss call per image, no forward pass."""
    return np.array([float(loss(slice(i, i + 1))) for i in range(images)], dtype=np.float64)


def validation_loss(losses: np.ndarray) -> dict[str, float]:
    """The epoch's validation loss from per-image losses (N,): ``loss``, their mean, and
    ``loss_se``, its standard error (sample std / sqrt(N); NaN below 2 images). A non-finite loss stays
    non-finite. Rules
    judge a change in the validation loss against ``loss_se``: on a few dozen images,
    the loss swings between epochs by more than any fixed relative margin."""
    values = np.asarray(losses, dtype=np.float64).reshape(-1)
    if values.size == 0:
        return {"loss": float("nan"), "loss_se": float("nan")}
    se = float(values.std(ddof=1) / np.sqrt(values.size)) if values.size > 1 else float("nan")
    return {"loss": float(values.mean()), "loss_se": se}
