"""Torch threads on a local Ray: the cores shared among the workers that run at once."""

from __future__ import annotations

import pytest

from medsight_ray.raylocal import local_torch_threads
from medsight_ray.tune.__main__ import _share_cores
from medsight_ray.tune.space import load_space
from medsight_ray.tune.sweep import SweepOptions, base_config
from tests.unit.tune.test_space import SPACES

GRADING = next(p for p in SPACES if p.stem == "grading")


@pytest.mark.parametrize(("cores", "workers", "threads"), [(2, 1, 2), (2, 2, 1), (2, 3, 1), (16, 3, 5), (1, 1, 1)])
def test_cores_are_divided_among_workers(cores: int, workers: int, threads: int, monkeypatch) -> None:
    monkeypatch.setattr("os.cpu_count", lambda: cores)
    assert local_torch_threads(workers) == threads


def test_a_sweep_shares_cores_between_concurrent_trials_and_keeps_a_set_count(monkeypatch) -> None:
    monkeypatch.setattr("os.cpu_count", lambda: 8)
    space = load_space(GRADING)
    one = _share_cores(space, SweepOptions())
    assert base_config(space, one).fit.torch_threads == 8
    two = _share_cores(space, SweepOptions(max_concurrent=2, overrides=("fit.workers=2",)))
    assert base_config(space, two).fit.torch_threads == 2
    fixed = SweepOptions(overrides=("fit.torch_threads=3",))
    assert _share_cores(space, fixed) is fixed
