"""Every setting that is a choice is checked before Ray starts: a wrong value through
``train`` or ``tune`` exits 2 with the valid values, and Ray is never started. So is a
request ``tune`` cannot honour (``kfold``)."""

from __future__ import annotations

from pathlib import Path

import pytest

from medsight_ray import raylocal, train
from medsight_ray.tune import __main__ as tune_cli
from medsight_ray.zoo import __main__ as zoo_cli
from tests.conftest import run_cli
from tests.unit.fit.test_config import _choices, _stage_configs


@pytest.fixture()
def no_ray(monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(*args: object, **kwargs: object) -> bool:
        raise AssertionError("Ray was started before the config was checked")

    monkeypatch.setattr(raylocal, "init_ray", refuse)


CASES = [(stage, key, values) for stage, cls in _stage_configs() for key, values in _choices(cls).items()]


@pytest.mark.parametrize("entry", ["train", "tune"])
@pytest.mark.parametrize("stage, key, values", CASES, ids=[f"{s}:{k}" for s, k, _ in CASES])
def test_a_wrong_choice_exits_2_before_ray(entry: str, stage: str, key: str, values: tuple, no_ray,
                                           synth_dir, tmp_path: Path, capsys) -> None:
    task, name = stage.split("/")
    data = synth_dir(task, rows=40 if task != "concepts" else 60)
    cli = train.cli if entry == "train" else tune_cli.cli
    code, text = run_cli(cli, f"medsight_ray.{entry}", ("--task", task, "--stage", name, "--data", str(data),
                                                         "--out", str(tmp_path / "o"), "--set", f"{key}=bogus"),
                         capsys)
    assert code == 2, text[-2000:]
    assert "Traceback" not in text and key in text and "'bogus'" in text
    assert all(repr(v) in text for v in values), text


def test_kfold_under_tune_is_refused_before_ray(no_ray, synth_dir, tmp_path: Path, capsys) -> None:
    code, text = run_cli(tune_cli.cli, "medsight_ray.tune",
                         ("--task", "grading", "--data", str(synth_dir("grading", rows=40)), "--out",
                          str(tmp_path / "o"), "--set", "kfold=5"), capsys)
    assert code == 2 and "k-fold cross-validation is not run by tune" in text and "kfold=5" in text
    assert "python -m medsight_ray.train --set kfold=K" in text


def test_an_unknown_zoo_entry_or_key_fails_before_ray(no_ray, tmp_path: Path, capsys) -> None:
    code, text = run_cli(zoo_cli.cli, "medsight_ray.zoo", ("--only", "lr_far_too_high,lr_too_hgih", "--out",
                                                           str(tmp_path / "z")), capsys)
    assert code == 2 and "unknown zoo entry" in text and "lr_too_hgih" in text and "lr_far_too_high" in text
    code, text = run_cli(zoo_cli.cli, "medsight_ray.zoo", ("--only", "lr_far_too_high", "--set",
                                                           "optim.scheduler=cosin", "--out", str(tmp_path / "z")),
                         capsys)
    assert code == 2 and "'cosin'" in text and "'cosine'" in text
    assert not (tmp_path / "z").exists()
