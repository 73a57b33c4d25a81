"""A local Ray's runs share the machine's cores: torch threads and decode tasks."""

from __future__ import annotations

import pytest

from medsight_ray.config import apply_overrides
from medsight_ray.raylocal import local_machine_overrides
from medsight_ray.stages.registry import get_stage
from medsight_ray.tune.__main__ import _share_cores
from medsight_ray.tune.space import load_space
from medsight_ray.tune.sweep import SweepOptions, base_config
from tests.unit.tune.test_space import SPACES

GRADING = next(p for p in SPACES if p.stem == "grading")


@pytest.mark.parametrize(("cores", "workers", "runs", "threads", "tasks"),
                         [(2, 1, 1, 2, 2), (2, 2, 1, 1, 2), (2, 1, 2, 1, 1), (16, 3, 1, 5, 16), (16, 2, 4, 2, 4),
                          (1, 1, 1, 1, 1)])
def test_cores_are_divided_among_workers_and_runs(cores: int, workers: int, runs: int, threads: int, tasks: int,
                                                  monkeypatch) -> None:
    monkeypatch.setattr("os.cpu_count", lambda: cores)
    cfg = apply_overrides(get_stage("grading").config_cls(), [f"fit.workers={workers}"])
    assert local_machine_overrides(cfg, runs) == {"fit.torch_threads": threads, "data.decode_tasks": tasks}


def test_settings_a_user_chose_are_kept(monkeypatch) -> None:
    monkeypatch.setattr("os.cpu_count", lambda: 8)
    cfg = apply_overrides(get_stage("grading").config_cls(), ["fit.torch_threads=3"])
    assert local_machine_overrides(cfg) == {"data.decode_tasks": 8}
    cfg = apply_overrides(cfg, ["data.decode_tasks=1"])
    assert local_machine_overrides(cfg) == {}


def test_a_sweep_shares_cores_between_concurrent_trials(monkeypatch) -> None:
    monkeypatch.setattr("os.cpu_count", lambda: 8)
    space = load_space(GRADING)
    one = base_config(space, _share_cores(space, SweepOptions()))
    assert (one.fit.torch_threads, one.data.decode_tasks) == (8, 8)
    two = base_config(space, _share_cores(space, SweepOptions(max_concurrent=2, overrides=("fit.workers=2",))))
    assert (two.fit.torch_threads, two.data.decode_tasks) == (2, 4)
    fixed = base_config(space, _share_cores(space, SweepOptions(overrides=("fit.torch_threads=3",))))
    assert (fixed.fit.torch_threads, fixed.data.decode_tasks) == (3, 8)
