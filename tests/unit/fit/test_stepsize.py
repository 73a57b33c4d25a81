"""The per-step weight change: one step measured on itself, whatever the epoch's length."""

from __future__ import annotations

import math

import torch
from torch import nn

from medsight_ray.fit.loop import update_ratio
from medsight_ray.fit.stepsize import SAMPLES, StepSize


def test_a_step_is_measured_as_its_own_relative_change() -> None:
    """Hand-computed: weights (3, 4) (norm 5) moved by (0, 0.5): a change of 0.1."""
    w = nn.Parameter(torch.tensor([3.0, 4.0]))
    probe = StepSize(expected_steps=1)
    probe.before([w])
    with torch.no_grad():
        w.add_(torch.tensor([0.0, 0.5]))
    probe.after([w])
    assert math.isclose(probe.mean(), 0.1, rel_tol=1e-6)


def _sgd_run(steps: int, seed: int = 0) -> tuple[float, float]:
    """Noisy SGD on a flat loss (gradients of pure noise): the per-step change and the
    epoch's displacement per step, over ``steps`` steps."""
    torch.manual_seed(seed)
    w = nn.Parameter(torch.randn(1000))
    optimizer = torch.optim.SGD([w], lr=0.01)
    start = w.detach().clone()
    probe = StepSize(steps)
    for _ in range(steps):
        w.grad = torch.randn(1000)
        probe.before([w])
        optimizer.step()
        probe.after([w])
    return probe.mean(), update_ratio(start, [w], steps)


def test_the_same_run_reads_the_same_on_ten_times_the_steps() -> None:
    """The same model and learning rate, 9 and 90 steps an epoch: the per-step change
    reads within 1.5x (here within a few %); the displacement per step reads about
    sqrt(10) = 3.2x lower on the longer epoch, as noisy steps cancel."""
    small, small_old = _sgd_run(9)
    large, large_old = _sgd_run(90)
    assert 1 / 1.5 < large / small < 1.5
    assert small_old / large_old > 2.5
    # Only a sample of a long epoch's steps is measured.
    probe = StepSize(1000)
    assert probe.stride == 1000 // SAMPLES
