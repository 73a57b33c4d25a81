"""A sweep and a train run exported to MLflow and TensorBoard, read back through MLflow's
client and TensorBoard's own event reader: values, not only presence."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from mlflow.tracking import MlflowClient
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from medsight_ray.errors import ConfigError
from medsight_ray.fit.checkpoint import save_checkpoint
from medsight_ray.report import mlflow_runs, tensorboard_events
from medsight_ray.report.trackers import check_mlflow, export

SECRET = "s3://AKIDX:SECRETX@bucket/data?endpoint_override=h:1"


def _history(epochs: int, auc: float, grad: float) -> list[dict]:
    return [{"epoch": e, "val/auc_macro": auc * e / epochs, "objective": auc * e / epochs, "train/loss": 1.0 / e,
             "train/grad_norm": grad * e, "train/update_ratio": 1e-3 / e} for e in range(1, epochs + 1)]


def _checkpoint(tmp: Path, name: str) -> str:
    save_checkpoint(tmp / name, {"w": torch.full((2,), 3.0)}, {"task": "concepts", "stage": "concepts"}, None, [])
    return str(tmp / name)


def _sweep(tmp: Path) -> dict:
    fatal = {"rule": "oversized_updates", "severity": "fatal", "epoch": 2, "remedies": ["lower the lr"]}
    dead = {"rule": "dead_outputs", "severity": "fatal", "epoch": 2, "remedies": []}
    trials = [
        {"trial_id": "good", "config": {"optim.lr": 0.003}, "status": "completed", "stop_reason": "completed",
         "epochs_run": 3, "diagnoses": [], "history": _history(3, 0.9, 0.5), "checkpoint": _checkpoint(tmp, "good"),
         "outcome": {"fatal_rules": []}},
        {"trial_id": "burnt", "config": {"optim.lr": 1.0}, "status": "stopped", "stop_reason": "health",
         "epochs_run": 2, "diagnoses": [fatal, dead], "history": _history(2, 0.5, 90.0), "checkpoint": None,
         "outcome": {"fatal_rules": ["oversized_updates", "dead_outputs"]}},
        {"trial_id": "healed", "config": {"optim.lr": 0.1}, "status": "completed", "stop_reason": "completed",
         "epochs_run": 3, "diagnoses": [], "history": _history(3, 0.8, 1.0), "checkpoint": None,
         "outcome": {"fatal_rules": []},
         "lineage": {"parent": "burnt", "root": "burnt", "attempt": 1, "rule": "oversized_updates", "epoch": 2,
                     "remedy": "lower the lr 1 -> 0.1", "overrides": ["optim.lr=0.1"]}},
    ]
    section = {"stage": "concepts/concepts", "primary_metric": "val/auc_macro", "trials": trials,
               "best": trials[0], "base_config": {"optim": {"lr": 0.003, "name": "adamw"}, "fit": {"epochs": 3}}}
    return {"data": SECRET, "stages": [section]}


def test_a_sweep_in_mlflow_is_a_parent_with_a_child_run_per_trial(tmp_path: Path) -> None:
    out = tmp_path / "sweep"
    (out / "report").mkdir(parents=True)
    (out / "report" / "report.md").write_text("# report")
    (out / "summary.json").write_text("{}")
    uri = check_mlflow("embedded", out)
    assert uri == f"sqlite:///{(out / 'mlflow' / 'mlflow.db').resolve()}"
    lines = export("sweep", _sweep(tmp_path), out, uri)
    parent_id = lines[-1].split()[2]
    client = MlflowClient(uri)
    experiment = client.get_experiment_by_name("medsight_ray")
    runs = {r.data.tags["medsight.trial_id"]: r for r in client.search_runs(
        [experiment.experiment_id], f"tags.mlflow.parentRunId = '{parent_id}'")}
    assert runs.keys() == {"good", "burnt", "healed"}
    good, burnt, healed = runs["good"], runs["burnt"], runs["healed"]
    # Params: the flat base config with the trial's sampled keys on top.
    assert healed.data.params == {"optim.lr": "0.1", "optim.name": "adamw", "fit.epochs": "3"}
    # Per-epoch metrics, the health signals among them, at step = epoch.
    grad = client.get_metric_history(burnt.info.run_id, "train/grad_norm")
    assert [(m.step, m.value) for m in grad] == [(1, 90.0), (2, 180.0)]
    assert [m.value for m in client.get_metric_history(good.info.run_id, "val/auc_macro")] == pytest.approx(
        [0.3, 0.6, 0.9])
    # Outcome and diagnoses as tags: the trial counts once, by the rule that fired first.
    assert burnt.data.tags["medsight.health"] == "health-stopped" and burnt.info.status == "KILLED"
    assert burnt.data.tags["medsight.first_cause"] == "oversized_updates"
    assert burnt.data.tags["medsight.diagnosis.dead_outputs"] == "fatal at epoch 2"
    assert [d["rule"] for d in json.loads(burnt.data.tags["medsight.diagnoses"])] == ["oversized_updates",
                                                                                     "dead_outputs"]
    assert good.data.tags["medsight.health"] == "healthy" and good.info.status == "FINISHED"
    # The lineage names the trial it answers and that trial's run.
    assert healed.data.tags["medsight.lineage.parent"] == "burnt"
    assert healed.data.tags["medsight.lineage.parent_run_id"] == burnt.info.run_id
    assert healed.data.tags["medsight.lineage.remedy"] == "lower the lr 1 -> 0.1"
    # Artifacts: the best checkpoint's model on its trial, the report on the sweep.
    assert [a.path for a in client.list_artifacts(good.info.run_id, "checkpoint")] == ["checkpoint/model.pt"]
    assert {a.path for a in client.list_artifacts(parent_id)} >= {"report", "summary.json"}
    parent = client.get_run(parent_id)
    assert parent.data.tags["medsight.best.concepts/concepts"] == good.info.run_id
    assert "SECRETX" not in json.dumps(parent.data.tags) and parent.data.tags["medsight.data"] == "s3://bucket/data"


def test_a_train_run_in_mlflow_is_one_run_with_the_same_contents(tmp_path: Path) -> None:
    out = tmp_path / "train"
    out.mkdir()
    torch.save({"w": 1}, out / "final_model.pt")
    run = {**_sweep(tmp_path)["stages"][0]["trials"][1], "task": "grading", "stage": "grading",
           "config": {"optim": {"lr": 1.0}}}
    summary = {"task": "grading", "data": "/d", "fingerprint": "f", "runs": [run],
               "lineages": {"grading": [{"attempt": 0, "rule": "oversized_updates"}]}}
    uri = mlflow_runs.tracking_uri(str(tmp_path / "store"), out)
    assert uri == f"sqlite:///{tmp_path / 'store' / 'mlflow.db'}"
    run_id = mlflow_runs.export_train(summary, uri, out)
    client = MlflowClient(uri)
    logged = client.get_run(run_id)
    assert logged.data.params == {"optim.lr": "1.0"} and logged.data.tags["medsight.kind"] == "train"
    assert logged.data.tags["medsight.first_cause"] == "oversized_updates"
    assert json.loads(logged.data.tags["medsight.lineage"])[0]["rule"] == "oversized_updates"
    assert [m.value for m in client.get_metric_history(run_id, "train/grad_norm")] == [90.0, 180.0]
    assert [a.path for a in client.list_artifacts(run_id, "checkpoint")] == ["checkpoint/final_model.pt"]


def test_an_unreachable_tracking_server_is_a_clear_error_before_training(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_TIMEOUT", "3")
    with pytest.raises(ConfigError, match="MLflow tracking store does not answer.*127.0.0.1:9"):
        check_mlflow("http://127.0.0.1:9", tmp_path)


def test_tensorboard_event_files_hold_each_trials_metrics(tmp_path: Path) -> None:
    root = tensorboard_events.write_sweep(_sweep(tmp_path), tmp_path / "out")
    folders = sorted(p.name for p in (root / "concepts-concepts").iterdir())
    assert folders == ["burnt", "good", "healed"]
    events = EventAccumulator(str(root / "concepts-concepts" / "burnt"))
    events.Reload()
    assert {"val/auc_macro", "train/grad_norm", "train/update_ratio"} <= set(events.Tags()["scalars"])
    assert [(e.step, e.value) for e in events.Scalars("train/grad_norm")] == [(1, 90.0), (2, 180.0)]
