"""Search spaces: every shipped file loads; every invalid space gets a named error."""

from __future__ import annotations

from pathlib import Path

import pytest

from medsight_ray.errors import ConfigError
from medsight_ray.tune.space import load_space

SPACES = sorted((Path(__file__).parents[3] / "tune_spaces").glob("*.yaml"))


def test_there_is_a_space_for_every_stage() -> None:
    stages = {load_space(p).stage.name for p in SPACES}
    assert stages == {"concepts", "prototypes", "diagnosis", "grading", "segmentation"}


@pytest.mark.parametrize("path", SPACES, ids=[p.stem for p in SPACES])
def test_shipped_space_loads_and_converts(path: Path) -> None:
    space = load_space(path)
    tune_space = space.param_space()
    assert set(tune_space) == {p.key for p in space.params}
    for point in space.points:
        assert set(point) == set(tune_space)  # TPE needs complete points


def test_seed_settings_are_first_points() -> None:
    s1 = load_space(Path(SPACES[0]).with_name("concepts.yaml"))
    assert s1.points[0]["optim.lr"] * s1.points[0]["optim.backbone_lr_scale"] == pytest.approx(1e-6)
    assert s1.points[0]["optim.lr"] * s1.points[0]["optim.head_lr_scale"] == pytest.approx(2e-5)
    assert load_space(Path(SPACES[0]).with_name("prototypes.yaml")).points[0]["loss.temperature"] == 0.1


BAD = {
    "low_above_high": ("params:\n  optim.lr: {dist: uniform, low: 1.0, high: 0.1}\n", "low is above high"),
    "unknown_dist": ("params:\n  optim.lr: {dist: gaussian, low: 0.1, high: 1.0}\n", "unknown distribution"),
    "unknown_config_key": ("params:\n  optim.learning_rate: {dist: uniform, low: 0.1, high: 1.0}\n",
                           "unknown config key"),
    "unknown_top_key": ("paramz: {}\n", "unknown key in search space"),
    "log_of_zero": ("params:\n  optim.lr: {dist: loguniform, low: 0.0, high: 1.0}\n", "positive low"),
    "point_outside": ("params:\n  optim.lr: {dist: uniform, low: 0.1, high: 1.0}\npoints_to_evaluate:\n"
                      "  - {optim.lr: 5.0}\n", "point lies outside the space"),
    "empty_choices": ("params:\n  loss.name: {dist: categorical, choices: []}\n", "categorical needs choices"),
    "unknown_stage": ("stage: grading/nope\n", "unknown stage"),
}


@pytest.mark.parametrize("case", sorted(BAD))
def test_invalid_space_is_named(case: str, tmp_path: Path) -> None:
    text, message = BAD[case]
    if not text.startswith("stage:"):
        text = "stage: grading/grading\n" + text
    (tmp_path / "s.yaml").write_text(text)
    with pytest.raises(ConfigError, match=message) as err:
        load_space(tmp_path / "s.yaml")
    assert "s.yaml" in str(err.value)
