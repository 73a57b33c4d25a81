"""The heal bench's plain sweep: it searches the stage's own ranges, starts from the
broken recipe where that lies inside them, and never widens a range to hold it (an lr of
1e4 in the range would make every draw worse than a user's own sweep)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from tests.unit.zoo.benchmod import ROOT, load_bench


def _bench() -> Any:
    return load_bench("heal")


def _entry(name: str) -> Any:
    from medsight_ray.zoo.entries import ENTRIES

    return next(e for e in ENTRIES if e.name == name)


def test_a_broken_recipe_inside_the_space_is_the_first_point() -> None:
    bench = _bench()
    text, inside = bench._space_for(_entry("minority_never_predicted"), 0)
    space = yaml.safe_load(text)
    own = yaml.safe_load((ROOT / "tune_spaces" / "grading.yaml").read_text())
    assert inside and space["num_samples"] == 1 + bench.REMEDIES
    assert space["params"] == own["params"]
    assert space["points_to_evaluate"][0]["sampler.balanced"] is True
    # The entry's own settings outside the space stay fixed: its sampler's fractions.
    assert space["fixed"]["sampler.class_fractions"] == "1,1,1,0"
    assert space["fixed"]["fit.seed"] == 0


def test_a_broken_recipe_outside_the_space_leaves_the_ranges_alone(tmp_path: Path) -> None:
    bench = _bench()
    text, inside = bench._space_for(_entry("lr_far_too_high"), 0)
    space = yaml.safe_load(text)
    own = yaml.safe_load((ROOT / "tune_spaces" / "grading.yaml").read_text())
    assert not inside
    assert space["params"]["optim.lr"] == own["params"]["optim.lr"]  # high stays 0.1, not 1e4
    assert space["points_to_evaluate"] == []
    # The broken run itself is trial 1 (from the remedies' lineage): the sweep draws the rest.
    assert space["num_samples"] == bench.REMEDIES
    from medsight_ray.tune.space import load_space

    (tmp_path / "space.yaml").write_text(text)  # the product's own loader accepts it
    loaded = load_space(tmp_path / "space.yaml")
    assert loaded.fixed["optim.name"] == "sgd" and loaded.fixed["fit.grad_clip"] == 0


def test_the_bar_is_the_lower_of_target_and_reference_less_slack() -> None:
    bench = _bench()
    assert bench.bar(0.8, 0.9) == 0.8
    assert abs(bench.bar(0.8, 0.7) - (0.7 - bench.REFERENCE_SLACK)) < 1e-12
    assert abs(bench.bar(None, 0.5) - (0.5 - bench.REFERENCE_SLACK)) < 1e-12
    assert bench.bar(None, None) == float("inf")


def test_processes_sharing_out_split_the_jobs(tmp_path: Path) -> None:
    """A job another live process holds is skipped; one whose holder died is taken over."""
    import os

    claim = _bench()._claim
    lock = tmp_path / "entry-s0.lock"
    assert claim(lock) and lock.read_text() == str(os.getpid())
    assert not claim(lock)  # held by a live process (this one)
    lock.write_text(str(_dead_pid()))
    assert claim(lock) and lock.read_text() == str(os.getpid())


def _dead_pid() -> int:
    """The pid of a process that has exited (and been reaped)."""
    import subprocess

    proc = subprocess.Popen(["true"])
    proc.wait()
    return proc.pid
