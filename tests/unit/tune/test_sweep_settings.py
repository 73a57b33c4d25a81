"""The Tune settings a sweep is built with, read from the ``Tuner`` it constructs (no Ray)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import ray.tune
from ray.tune.schedulers import ASHAScheduler

from medsight_ray.data.schema import CATARACT_CLASSES, DatasetInfo
from medsight_ray.fit.runner import PreparedData
from medsight_ray.tune.__main__ import spaces_dir
from medsight_ray.tune.space import load_space
from medsight_ray.tune.sweep import SweepOptions, sweep_stage


class _Built(Exception):
    """Raised by the fake Tuner's fit: the sweep is built, nothing is run."""


def test_a_stopped_trials_driver_is_never_reused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A trial that ASHA or the health stopper stops is inside Ray Train's ``fit()``; only
    killing its actor ends that Train run. With ``reuse_actors=True`` Tune caches the actor
    instead, and the stopped run trained on, blocked on a report nobody read, and hung a
    grading sweep (bench/time_to_target.py). So the sweep must not reuse trial actors."""
    built: dict[str, Any] = {}

    class FakeTuner:
        def __init__(self, trainable: Any, **kwargs: Any) -> None:
            built.update(kwargs)

        def fit(self) -> None:
            raise _Built

    monkeypatch.setattr(ray.tune, "Tuner", FakeTuner)
    monkeypatch.setattr(ray.tune, "with_parameters", lambda fn, **_: fn)
    monkeypatch.setattr(ray.tune, "with_resources", lambda fn, _: fn)
    space = load_space(spaces_dir() / "grading.yaml")
    info = DatasetInfo("grading", "RGB", CATARACT_CLASSES)
    data = PreparedData(str(tmp_path / "data"), info, {"rows": 100, "class_counts": [40, 30, 20, 10]}, "fp")
    with pytest.raises(_Built):
        sweep_stage(space, data, str(tmp_path / "out"), SweepOptions(samples=2, decode_once=False))
    config = built["tune_config"]
    assert config.reuse_actors is False
    # The scheduler is ASHA by default, which stops trials mid-run: the case above.
    assert isinstance(config.scheduler, ASHAScheduler)
