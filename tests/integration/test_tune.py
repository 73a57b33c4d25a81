"""A small sweep through Ray Tune + Optuna + ASHA, one TorchTrainer per trial."""

from __future__ import annotations

import contextlib
import json
import os
import re
import signal
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from medsight_ray.localcluster import free_port
from medsight_ray.tune import __main__ as tune_cli
from tests.conftest import grading_space, run_cli

pytestmark = [pytest.mark.ray, pytest.mark.usefixtures("ray_local")]

SPACE = """
stage: grading/grading
num_samples: 3
fixed:
  fit.epochs: 2
  fit.batch_size: 16
  fit.cpus_per_worker: 0.5
  fit.grad_clip: 0
  optim.name: sgd
  data.image_size: 32
  model.backbone.name: resnet10t
params:
  optim.lr: {dist: loguniform, low: 1.0e-4, high: 1.0e+4}
  loss.name: {dist: categorical, choices: [ce, focal]}
points_to_evaluate:
  - {optim.lr: 3.0e-2, loss.name: ce}
  - {optim.lr: 1.0e+4, loss.name: ce}
"""


@pytest.fixture(scope="module")
def mlflow_server(tmp_path_factory) -> Iterator[str]:
    """An ``mlflow server`` on 127.0.0.1 (SQLite store, artifacts proxied), as a team runs
    one; started again on a fresh port if the one picked was taken before it bound."""
    root = tmp_path_factory.mktemp("mlflow_server")
    for _ in range(3):
        port = free_port()
        server = subprocess.Popen(
            [str(Path(sys.executable).parent / "mlflow"), "server", "--host", "127.0.0.1", "--port", str(port),
             "--backend-store-uri", f"sqlite:///{root / 'mlflow.db'}", "--artifacts-destination",
             str(root / "artifacts"), "--workers", "1"],
            cwd=root, stdout=open(root / "server.log", "ab"), stderr=subprocess.STDOUT)  # noqa: SIM115
        deadline = time.monotonic() + 240  # its first start migrates the database: slow on a loaded machine
        while server.poll() is None and time.monotonic() < deadline:
            with contextlib.suppress(OSError):
                if urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=5).status == 200:
                    break
            time.sleep(1)
        else:
            server.kill()
            server.wait()
            continue
        try:
            yield f"http://127.0.0.1:{port}"
        finally:
            server.terminate()
            server.wait(timeout=60)
        return
    raise RuntimeError(f"mlflow server did not start: {(root / 'server.log').read_text()[-2000:]}")


def _run(capsys, *args: str) -> tuple[int, str]:
    return run_cli(tune_cli.cli, "medsight_ray.tune", args, capsys)


def test_three_trial_sweep_writes_a_complete_summary(synth_dir, tmp_path: Path, capsys, mlflow_server) -> None:
    (tmp_path / "space.yaml").write_text(SPACE)
    out = tmp_path / "sweep"
    # ASHA and Optuna both active: the NaN trial must be stopped alone, the rest carry on.
    # Stored at 40 px, trained at 32: each split is decoded once, before the first trial.
    code, text = _run(capsys, "--space", str(tmp_path / "space.yaml"), "--data",
                      str(synth_dir("grading", rows=90, image_size=40)),
                      "--out", str(out), "--remedies", "0", "--mlflow", mlflow_server)
    assert code == 0, text[-3000:]
    summary = json.loads((out / "summary.json").read_text())
    (stage,) = summary["stages"]
    assert stage["stage"] == "grading/grading" and len(stage["trials"]) == 3
    healthy, broken = stage["trials"][0], stage["trials"][1]
    assert healthy["config"] == {"optim.lr": 3.0e-2, "loss.name": "ce"}  # points_to_evaluate come first
    assert healthy["status"] == "completed" and healthy["epochs_run"] == 2 and healthy["diagnoses"] == []
    assert "val/f1_macro" in healthy["best"] and healthy["wall_seconds"] > 0
    # The far-too-high learning rate is diagnosed and stopped by the health monitor, alone.
    rule = broken["diagnoses"][0]["rule"]
    assert rule in ("non_finite", "exploding_gradients") and broken["diagnoses"][0]["remedies"]
    assert broken["status"] == "stopped" and broken["stop_reason"] == f"health: {rule}"
    assert broken["epochs_run"] == 1 and broken["best"]["objective"] == 0.0
    # Tune killed its driver before it wrote its own record: the times come from its checkpoint.
    assert broken["time_parts"]["to loop"] > 0 and "epochs" in broken["time_parts"]
    # Every trial streamed the one decoded mirror the sweep wrote before its first trial.
    (mirror,) = (out / "decoded").iterdir()
    assert json.loads((mirror / "decoded.json").read_text())["size"] == 32
    best = stage["best"]
    assert best["trial_id"] != broken["trial_id"]
    assert best["best"]["objective"] == max(t["best"]["objective"] for t in stage["trials"] if not t["diagnoses"])
    assert Path(best["checkpoint"]).is_dir() and summary["final_model"] == best["checkpoint"]
    assert "best:" in text and f"health: {rule}" in text
    assert "== sweep summary" in text and f"1 by {rule}" in text
    report = (out / "report" / "report.md").read_text()
    assert f"| {broken['trial_id']} | health-stopped | 1 |" in report and "Hyperparameter importance" in report
    _the_sweep_is_in_mlflow_and_tensorboard(mlflow_server, summary, out, text)


def _the_sweep_is_in_mlflow_and_tensorboard(uri: str, summary: dict, out: Path, text: str) -> None:
    """Read the sweep back from the tracking server: a parent run, a child per trial with
    the trial's config, per-epoch metrics, outcome and checkpoint; and the event files."""
    from mlflow.tracking import MlflowClient
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    (stage,) = summary["stages"]
    parent_id = next(line.split()[2] for line in text.splitlines() if line.startswith("mlflow: run "))
    client = MlflowClient(uri)
    experiment = client.get_experiment_by_name("medsight_ray").experiment_id
    runs = {r.data.tags["medsight.trial_id"]: r for r in
            client.search_runs([experiment], f"tags.mlflow.parentRunId = '{parent_id}'")}
    assert runs.keys() == {t["trial_id"] for t in stage["trials"]}
    for trial in stage["trials"]:
        run = runs[trial["trial_id"]]
        assert float(run.data.params["optim.lr"]) == trial["config"]["optim.lr"]
        assert run.data.params["fit.epochs"] == "2" and run.data.params["optim.name"] == "sgd"
        assert run.data.tags["medsight.status"] == trial["status"]
        losses = client.get_metric_history(run.info.run_id, "train/loss")
        expected = [h["train/loss"] for h in trial["history"]]
        assert [m.step for m in losses] == [h["epoch"] for h in trial["history"]]
        assert [m.value for m in losses] == pytest.approx(expected, nan_ok=True)
        assert client.get_metric_history(run.info.run_id, "train/grad_norm")  # the health signals too
    healthy, broken = stage["trials"][0], stage["trials"][1]
    assert runs[broken["trial_id"]].data.tags["medsight.health"] == "health-stopped"
    assert runs[broken["trial_id"]].data.tags["medsight.first_cause"] == broken["diagnoses"][0]["rule"]
    assert runs[healthy["trial_id"]].data.tags["medsight.health"] == "healthy"
    assert [a.path for a in client.list_artifacts(runs[healthy["trial_id"]].info.run_id, "checkpoint")] == [
        "checkpoint/model.pt"]
    assert "report" in {a.path for a in client.list_artifacts(parent_id)}
    events = EventAccumulator(str(out / "tensorboard" / "grading-grading" / healthy["trial_id"]))
    events.Reload()
    assert [e.value for e in events.Scalars("train/loss")] == pytest.approx([h["train/loss"]
                                                                           for h in healthy["history"]])


def test_bad_space_exits_2(tmp_path: Path, capsys) -> None:
    (tmp_path / "bad.yaml").write_text("stage: grading/grading\nparams:\n"
                                       "  optim.lr: {dist: uniform, low: 2, high: 1}\n")
    code, text = _run(capsys, "--space", str(tmp_path / "bad.yaml"), "--data", str(tmp_path))
    assert code == 2 and "low is above high" in text


RESUME_SPACE = grading_space(3.0e-2, 1.0e-2)


def _kill_when(proc: subprocess.Popen, predicate, timeout: float, what: str) -> None:
    """SIGKILL the driver's process group once ``predicate`` holds (and whatever happens)."""
    try:
        _wait_for(predicate, timeout, what, proc)
        os.killpg(proc.pid, signal.SIGKILL)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()


def _wait_for(predicate, timeout: float, what: str, proc: subprocess.Popen) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if proc.poll() is not None:
            raise AssertionError(f"the sweep ended (exit {proc.returncode}) before {what}: "
                                 f"{proc.stdout.read()[-3000:] if proc.stdout else ''}")
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.5)


def _terminated_trials(experiment: Path) -> int:
    """How many trials the experiment state in storage records as ended (0 while none is
    saved, or while a save is half-written)."""
    total = 0
    for path in experiment.glob("experiment_state-*.json"):
        try:
            trials = json.loads(path.read_text())["trial_data"]
            total += sum(json.loads(trial)["status"] == "TERMINATED" for trial, _ in trials)
        except (ValueError, KeyError, OSError):
            return 0
    return total


def test_killed_sweep_resumes_without_rerunning_finished_trials(synth_dir, tmp_path: Path, capsys) -> None:
    """SIGKILL the tune driver after its first trial finished; ``--resume`` completes the
    sweep, and the finished trial is neither rerun nor altered."""
    import ray

    (tmp_path / "space.yaml").write_text(RESUME_SPACE)
    out, store = tmp_path / "sweep", tmp_path / "store"
    # Tune saves its experiment state on an adaptive timer (at least every 10 s, longer when
    # a save is slow): a 1 s period makes sure a save lands while the second trial runs.
    env = {**os.environ, "RAY_ADDRESS": ray.get_runtime_context().gcs_address, "TUNE_GLOBAL_CHECKPOINT_S": "1"}
    # Data and storage as file:// URIs: the code path of s3:// and gs://, runnable here.
    proc = subprocess.Popen(
        [sys.executable, "-m", "medsight_ray.tune", "--space", str(tmp_path / "space.yaml"), "--data",
         f"file://{synth_dir('grading', rows=90)}", "--out", str(out), "--storage", f"file://{store}", "--no-asha"],
        env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True)
    experiment = store / "grading-grading"

    def saved_after_first_trial() -> bool:
        # Wait until the experiment state in storage records the first trial as ended. Its
        # contents, not file times: each save uploads the whole driver directory (trial
        # results included) again, so every file's mtime is that of the last upload.
        return _terminated_trials(experiment) == 1

    _kill_when(proc, saved_after_first_trial, 420, "the experiment state after the first trial finished")
    (first,) = list(experiment.glob("*/stage_result.json"))
    assert not (out / "summary.json").exists()
    finished = first.parent
    before = {p.name: p.read_bytes() for p in (finished / "result.json", first)}
    trial_id = json.loads((finished / "result.json").read_text().splitlines()[-1])["trial_id"]
    checkpoints = sorted(p.name for p in (store / "train" / f"train-{trial_id}").glob("checkpoint_2*"))
    assert len(checkpoints) == 1

    code, text = _run(capsys, "--resume", "--out", str(out))
    assert code == 0, text[-3000:]
    summary = json.loads((out / "summary.json").read_text())
    (stage,) = summary["stages"]
    assert len(stage["trials"]) == 2 and {t["status"] for t in stage["trials"]} == {"completed"}
    assert sorted(t["config"]["optim.lr"] for t in stage["trials"]) == [1.0e-2, 3.0e-2]
    # The finished trial was not trained again (no new checkpoint), and its results are
    # byte-for-byte what they were (Tune may copy them again on restore).
    assert sorted(p.name for p in (store / "train" / f"train-{trial_id}").glob("checkpoint_2*")) == checkpoints
    assert {p.name: p.read_bytes() for p in (finished / "result.json", first)} == before
    assert summary["final_model"] and Path(summary["final_model"]).is_dir()
    assert Path(summary["final_model"]).is_relative_to(store)
    assert (out / "report" / "report.md").is_file()
    # The summary and report are published beside the trials in the storage too.
    assert (store / "summary.json").read_bytes() == (out / "summary.json").read_bytes()
    assert (store / "report" / "report.md").is_file()


REMEDY_SPACE = """
stage: grading/grading
num_samples: 1
fixed:
  fit.epochs: 2
  fit.batch_size: 16
  fit.cpus_per_worker: 0.5
  data.image_size: 32
  model.backbone.name: resnet10t
params:
  optim.lr: {dist: loguniform, low: 1.0e-4, high: 1.0e+1}
points_to_evaluate:
  - {optim.lr: 3.0}
"""


def test_a_diagnosed_trial_is_followed_by_its_remedy_trial_which_heals_on_the_default_run(
        synth_dir, tmp_path: Path, capsys) -> None:
    """The sweep's samples are the grading default (lr 0.003) and lr 3.0 (a thousand times
    it). lr 3.0 is stopped at epoch 1 by a learning-rate rule; the searcher queues its
    remedy (back to the stage default, one move) on top of the sample budget. That run
    was trained already: the remedy trial takes its result without training, and its
    lineage records "healed" with the default's metric. The stopped trial reaches TPE;
    the lineage is in the summary, the console and the report."""
    (tmp_path / "space.yaml").write_text(REMEDY_SPACE.replace("num_samples: 1", "num_samples: 2").replace(
        "  - {optim.lr: 3.0}", "  - {optim.lr: 0.003}\n  - {optim.lr: 3.0}"))
    out = tmp_path / "heal"
    code, text = _run(capsys, "--space", str(tmp_path / "space.yaml"), "--data", str(synth_dir("grading", rows=90)),
                      "--out", str(out), "--no-asha")
    assert code == 0, text[-3000:]
    (stage,) = json.loads((out / "summary.json").read_text())["stages"]
    default, broken, remedy = stage["trials"]
    assert default["config"] == {"optim.lr": 0.003} and default["status"] == "completed"
    assert broken["config"] == {"optim.lr": 3.0} and broken["status"] == "stopped" and broken["lineage"] is None
    rule = broken["outcome"]["fatal_rules"][0]
    assert rule in ("oversized_updates", "exploding_gradients", "non_finite", "dead_outputs")
    assert remedy["config"]["optim.lr"] == pytest.approx(0.003)
    lineage = remedy["lineage"]
    assert (lineage["parent"], lineage["root"], lineage["attempt"], lineage["rule"]) == (
        broken["trial_id"], broken["trial_id"], 1, rule)
    assert lineage["overrides"] == ["optim.lr=0.003"] and "optim.lr 3 -> 0.003" in lineage["remedy"]
    # The remedy's run is the default's: its result, not a second training.
    assert remedy["reused_from"] == default["trial_id"] and default["reused_from"] is None
    assert not (out / "train" / f"train-{remedy['trial_id']}").exists()
    assert remedy["status"] == "completed" and not remedy["outcome"]["fatal_rules"]
    assert remedy["history"] == default["history"] and remedy["best"] == default["best"]
    assert remedy["checkpoint"] == default["checkpoint"]
    assert stage["best"]["trial_id"] == default["trial_id"]
    metric = f"{default['best']['val/f1_macro']:.4g}"
    assert (f"remedy: {broken['trial_id']} -> {rule} @ epoch 1 -> optim.lr=0.003 -> {remedy['trial_id']} "
            f"(same config as {default['trial_id']}: its result reused) healed, val/f1_macro {metric}") in text
    assert re.search(rf"trial {remedy['trial_id']} .*same config as {default['trial_id']}: its result reused", text)


def test_a_remedy_queued_before_the_driver_was_killed_runs_after_the_resume(synth_dir, tmp_path: Path,
                                                                            capsys) -> None:
    """SIGKILL the driver once Tune has saved the searcher's state with the remedy in it
    (queued, or suggested and not finished); --resume runs the remedy trial to its end."""
    import ray

    (tmp_path / "space.yaml").write_text(REMEDY_SPACE)
    out = tmp_path / "sweep"
    env = {**os.environ, "RAY_ADDRESS": ray.get_runtime_context().gcs_address, "TUNE_GLOBAL_CHECKPOINT_S": "1"}
    proc = subprocess.Popen(
        [sys.executable, "-m", "medsight_ray.tune", "--space", str(tmp_path / "space.yaml"), "--data",
         str(synth_dir("grading", rows=90)), "--out", str(out), "--no-asha"],
        env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True)
    experiment = out / "grading-grading"

    def remedy_saved() -> bool:
        return any("_lineage" in p.read_text(errors="replace") for p in experiment.glob("searcher-state-*.pkl"))

    _kill_when(proc, remedy_saved, 300, "a saved searcher state with the remedy")
    assert not (out / "summary.json").exists()
    # Killed before the remedy trial ended: at most the stopped trial wrote its result.
    assert len(list(experiment.glob("*/stage_result.json"))) <= 1

    code, text = _run(capsys, "--resume", "--out", str(out))
    assert code == 0, text[-3000:]
    (stage,) = json.loads((out / "summary.json").read_text())["stages"]
    broken, remedy = sorted(stage["trials"], key=lambda t: t["lineage"] is not None)
    assert broken["outcome"]["fatal_rules"] and broken["lineage"] is None
    assert remedy["lineage"]["root"] == broken["trial_id"] and remedy["config"]["optim.lr"] == pytest.approx(0.003)
    assert remedy["status"] == "completed" and stage["best"]["trial_id"] == remedy["trial_id"]
