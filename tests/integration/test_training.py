"""Stage training through Ray Train's TorchTrainer on tiny data."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from medsight_ray.config import apply_overrides
from medsight_ray.fit.checkpoint import load_model_file
from medsight_ray.fit.runner import prepare_data, run_stage
from medsight_ray.stages.base import get_stage, pipeline

pytestmark = [pytest.mark.ray, pytest.mark.usefixtures("ray_local")]

TINY = ["fit.epochs=1", "fit.batch_size=16", "fit.cpus_per_worker=0.5", "data.image_size=32",
        "model.backbone.name=resnet10t"]


def _cfg(stage, *extra: str):
    return apply_overrides(stage.config_cls(), [*TINY, *extra])


def _part(state: dict[str, torch.Tensor], prefix: str) -> dict[str, torch.Tensor]:
    return {k: v for k, v in state.items() if k.startswith(prefix)}


def test_three_stage_pipeline_keeps_frozen_parts_frozen(synth_dir, tmp_path: Path) -> None:
    data = prepare_data(str(synth_dir("concepts", rows=80)), "concepts")
    previous, states = None, {}
    for stage in pipeline("concepts"):
        result = run_stage(stage, _cfg(stage), data, str(tmp_path), stage.name, previous)
        assert result.status == "completed", result.error
        assert result.epochs_run == 1 and result.checkpoint
        assert "val/" + stage.primary_metric in result.best
        meta = load_model_file(result.checkpoint)
        assert meta["task"] == "concepts" and meta["stage"] == stage.name
        states[stage.name] = meta["state_dict"]
        previous = result.checkpoint
    s1, s2, s3 = states["concepts"], states["prototypes"], states["diagnosis"]
    for prefix in ("backbone.", "concept_head."):  # stage 1's weights, BN statistics included
        assert all(torch.equal(v, _part(s2, prefix)[k]) for k, v in _part(s1, prefix).items())
        assert all(torch.equal(v, _part(s3, prefix)[k]) for k, v in _part(s1, prefix).items())
    for prefix in ("projector.", "prototypes"):
        assert any(not torch.equal(v, _part(s1, prefix)[k]) for k, v in _part(s2, prefix).items())
        assert all(torch.equal(v, _part(s3, prefix)[k]) for k, v in _part(s2, prefix).items())
    assert not torch.equal(s2["task_head.weight"], s3["task_head.weight"])


def test_two_workers_train_grading_and_reduce_metrics(synth_dir, tmp_path: Path) -> None:
    data = prepare_data(str(synth_dir("grading", rows=90)), "grading")
    stage = get_stage("grading")
    result = run_stage(stage, _cfg(stage, "fit.workers=2", "fit.batch_size=8"), data, str(tmp_path), "two")
    assert result.status == "completed", result.error
    details = result.history[-1]["details"]
    # Metrics cover every validation row once, gathered from both workers.
    assert sum(details["support"].values()) == sum(1 for f in Path(data.uri).glob("val-*.parquet")
                                                   for _ in __import__("pyarrow.parquet").parquet.read_table(f)
                                                   .column("label").to_pylist())


def test_chaining_refuses_another_dataset(synth_dir, tmp_path: Path) -> None:
    from medsight_ray.errors import ConfigError
    from medsight_ray.fit.runner import init_from

    first = prepare_data(str(synth_dir("concepts", rows=80)), "concepts")
    stage = get_stage("concepts", "concepts")
    result = run_stage(stage, _cfg(stage), first, str(tmp_path), "s1")
    other = prepare_data(str(synth_dir("concepts", rows=80, seed=9)), "concepts")
    with pytest.raises(ConfigError, match="dataset changed between stages"):
        init_from(get_stage("concepts", "prototypes"), _cfg(stage), result.checkpoint, other)


def _cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "medsight_ray.train", *args], capture_output=True, text=True,
                          timeout=300)


@pytest.mark.parametrize(("args", "message"), [
    (["--task", "detection"], "unknown task"),
    (["--task", "concepts", "--stage", "stage4"], "unknown stage"),
    (["--task", "concepts"], "several stages"),
    (["--task", "grading", "--set", "optim.learning_rate=1"], "unknown config key"),
    (["--task", "grading", "--set", "model.backbone.name=resnet_9000"], "unknown timm backbone"),
    (["--task", "segmentation"], "dataset is of another task family"),
])
def test_cli_usage_errors_exit_2_without_traceback(args: list[str], message: str, synth_dir,
                                                   tmp_path: Path) -> None:
    res = _cli(*args, "--data", str(synth_dir("grading", rows=60)), "--out", str(tmp_path / "o"))
    assert res.returncode == 2, res.stderr[-2000:]
    assert message in res.stderr and "Traceback" not in res.stderr


def test_cli_missing_data_dir(tmp_path: Path) -> None:
    res = _cli("--task", "grading", "--data", str(tmp_path / "none"), "--out", str(tmp_path / "o"))
    assert res.returncode == 2 and "does not exist" in res.stderr


def test_cli_trains_and_writes_summary(synth_dir, tmp_path: Path) -> None:
    out = tmp_path / "run"
    res = _cli("--task", "segmentation", "--data", str(synth_dir("segmentation", rows=60)), "--out", str(out),
               *[a for kv in TINY for a in ("--set", kv)])
    assert res.returncode == 0, res.stderr[-3000:]
    summary = json.loads((out / "summary.json").read_text())
    run = summary["runs"][0]
    assert run["status"] == "completed" and run["epochs_run"] == 1
    assert {"val/dice", "val/pred_mean", "val/target_mean"} <= set(run["final"])
    assert Path(summary["final_model"]).is_file()
    pred = subprocess.run([sys.executable, "-m", "medsight_ray.predict", "--checkpoint", summary["final_model"],
                           "--image", str(Path(__file__).parents[1] / "fixtures/nuclei/images/tile_00.png"),
                           "--out", str(tmp_path / "pred")], capture_output=True, text=True, timeout=120)
    assert pred.returncode == 0, pred.stderr
    assert (tmp_path / "pred" / "mask.png").is_file() and (tmp_path / "pred" / "overlay.png").is_file()
