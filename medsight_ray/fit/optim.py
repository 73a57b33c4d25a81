"""Optimiser with named parameter groups, and learning-rate schedules from torch."""

from __future__ import annotations

import math

import torch
from torch import nn

from medsight_ray.errors import ConfigError
from medsight_ray.fit.config import OptimConfig

SCHEDULERS = ("cosine", "onecycle", "constant")


def group_lr(optim: OptimConfig, group: str) -> float:
    """``optim.lr`` times the group's named scale (``<group>_lr_scale``)."""
    scale = getattr(optim, f"{group}_lr_scale", None)
    if scale is None:
        raise ConfigError("no lr scale for parameter group", where=f"optim.{group}_lr_scale",
                          expected="a named *_lr_scale field", got=group)
    return optim.lr * scale


def build_optimizer(groups: dict[str, list[nn.Parameter]], optim: OptimConfig) -> torch.optim.Optimizer:
    """One optimiser, one param group per named group (empty groups skipped)."""
    param_groups = [{"params": params, "lr": group_lr(optim, name), "name": name}
                    for name, params in groups.items() if params]
    if not param_groups:
        raise ConfigError("nothing to train", where="stage trainable parts", expected="at least one parameter",
                          got="no parameter group")
    if optim.name == "adamw":
        return torch.optim.AdamW(param_groups, weight_decay=optim.weight_decay)
    if optim.name == "sgd":
        return torch.optim.SGD(param_groups, momentum=0.9, weight_decay=optim.weight_decay)
    raise ConfigError("unknown optimiser", where="optim.name", expected="adamw or sgd", got=repr(optim.name))


class Schedule:
    """A torch LR scheduler stepped once per optimiser step, held at its end.

    Streaming data gives only an estimate of the step count; stepping past it would
    make OneCycleLR raise and cosine restart, so the schedule stops at its last step.
    """

    def __init__(self, optimizer: torch.optim.Optimizer, optim: OptimConfig, total_steps: int) -> None:
        if optim.scheduler not in SCHEDULERS:
            raise ConfigError("unknown scheduler", where="optim.scheduler", expected=f"one of {list(SCHEDULERS)}",
                              got=repr(optim.scheduler))
        self.total = max(int(total_steps), 1)
        self.steps = 0
        self.scheduler: torch.optim.lr_scheduler.LRScheduler | None = None
        if optim.scheduler == "onecycle":
            max_lrs = [g["lr"] for g in optimizer.param_groups]
            self.scheduler = torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=max_lrs, total_steps=self.total + 1)
        elif optim.scheduler == "cosine":
            warm = max(1, math.ceil(self.total * optim.warmup_fraction))
            self.scheduler = torch.optim.lr_scheduler.SequentialLR(optimizer, [
                torch.optim.lr_scheduler.LinearLR(optimizer, start_factor=0.01, total_iters=warm),
                torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=max(self.total - warm, 1)),
            ], milestones=[warm])

    def step(self) -> None:
        """Advance one optimiser step (no-op past the end)."""
        if self.scheduler is not None and self.steps < self.total:
            self.scheduler.step()
        self.steps += 1

    def state_dict(self) -> dict:
        """For checkpoints."""
        return {"steps": self.steps, "scheduler": self.scheduler.state_dict() if self.scheduler else None}

    def load_state_dict(self, state: dict) -> None:
        """Restore from :meth:`state_dict`."""
        self.steps = state["steps"]
        if self.scheduler is not None and state["scheduler"] is not None:
            self.scheduler.load_state_dict(state["scheduler"])
