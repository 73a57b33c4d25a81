"""Gradient accumulation in the fit loop: every micro-batch's gradient is used.

With 5 micro-batches and ``fit.accumulate=2`` an epoch makes 3 optimiser steps: on
batches (1, 2), (3, 4) and (5), each with the mean gradient of its batches. The last,
short group used to be zeroed at the next epoch without a step.
"""

from __future__ import annotations

import copy
from types import SimpleNamespace
from typing import Any

import torch
from torch import nn

from medsight_ray.config import apply_overrides
from medsight_ray.fit.loop import _Trainer
from medsight_ray.fit.stepsize import StepSize
from medsight_ray.fit.timeline import LoopTimeline
from medsight_ray.stages.grading import GradingConfig


class _Stage:
    def train_step(self, model: nn.Module, batch: dict[str, torch.Tensor], ctx: Any) -> dict[str, torch.Tensor]:
        return {"loss": ((model(batch["image"]) - batch["y"]) ** 2).mean()}


class _Shard:
    def __init__(self, batches: list[dict[str, torch.Tensor]]) -> None:
        self.batches = batches

    def iter_torch_batches(self, **kwargs: Any) -> list[dict[str, torch.Tensor]]:
        return self.batches


class _Quiet:
    """Monitor, exporter and schedule stand-ins that record the steps."""

    def __init__(self) -> None:
        self.steps = 0

    def on_step(self, *values: float) -> bool:
        return False

    def step(self) -> None:
        self.steps += 1


def _trainer(model: nn.Module, accumulate: int) -> _Trainer:
    trainer = _Trainer.__new__(_Trainer)
    trainer.cfg = apply_overrides(GradingConfig(), [f"fit.accumulate={accumulate}", "fit.grad_clip=0",
                                                    "data.hflip=0", "data.vflip=0", "data.intensity=0"])
    trainer.rank = 0
    trainer.stage, trainer.model, trainer.wrapped, trainer.ctx = _Stage(), model, model, SimpleNamespace(epoch=0)
    trainer.device, trainer.use_amp, trainer.drop_last = torch.device("cpu"), False, False
    trainer.amp_dtype, trainer.skipped_steps = torch.float16, 0
    trainer.steps_per_epoch = 5
    trainer.step_size = StepSize(trainer.steps_per_epoch)
    trainer.optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    trainer.scaler = torch.amp.GradScaler("cpu", enabled=False)
    trainer.monitor, trainer.exporter, trainer.schedule = _Quiet(), _Quiet(), _Quiet()
    trainer.timeline = LoopTimeline()
    return trainer


def _batches() -> list[dict[str, torch.Tensor]]:
    g = torch.Generator().manual_seed(0)
    return [{"image": torch.randn(4, 3, generator=g), "y": torch.randn(4, 1, generator=g)} for _ in range(5)]


def _by_hand(model: nn.Module, batches: list[dict[str, torch.Tensor]], groups: list[list[int]]) -> nn.Module:
    """SGD steps, each on the mean gradient of one group of micro-batches."""
    model = copy.deepcopy(model)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    for group in groups:
        optimizer.zero_grad()
        loss = sum(((model(batches[i]["image"]) - batches[i]["y"]) ** 2).mean() for i in group) / len(group)
        loss.backward()
        optimizer.step()
    return model


def test_a_short_last_group_is_stepped_on_with_its_mean_gradient() -> None:
    torch.manual_seed(0)
    model = nn.Linear(3, 1)
    expected = _by_hand(model, _batches(), [[0, 1], [2, 3], [4]])
    trainer = _trainer(model, accumulate=2)
    metrics = trainer.train_epoch(_Shard(_batches()))
    assert metrics["train/steps"] == 3 and trainer.schedule.steps == 3
    for got, want in zip(model.parameters(), expected.parameters()):
        torch.testing.assert_close(got, want)
    assert all(p.grad is None for p in model.parameters())  # nothing carried into the next epoch


def test_without_accumulation_every_batch_is_a_step() -> None:
    torch.manual_seed(0)
    model = nn.Linear(3, 1)
    expected = _by_hand(model, _batches(), [[0], [1], [2], [3], [4]])
    trainer = _trainer(model, accumulate=1)
    assert trainer.train_epoch(_Shard(_batches()))["train/steps"] == 5
    for got, want in zip(model.parameters(), expected.parameters()):
        torch.testing.assert_close(got, want)


def test_the_short_group_changes_the_weights() -> None:
    """Control: dropping the short group (the old behaviour) gives other weights."""
    torch.manual_seed(0)
    model = nn.Linear(3, 1)
    dropped = _by_hand(model, _batches(), [[0, 1], [2, 3]])
    _trainer(model, accumulate=2).train_epoch(_Shard(_batches()))
    assert not torch.allclose(next(model.parameters()), next(dropped.parameters()))
