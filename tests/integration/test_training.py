"""Stage training through Ray Train's TorchTrainer on tiny data."""

from __future__ import annotations

import json
import math
import subprocess
import sys
import time
from pathlib import Path

import pyarrow.parquet as pq
import pytest
import torch

from medsight_ray import train
from medsight_ray.config import apply_overrides
from medsight_ray.errors import ConfigError
from medsight_ray.fit.checkpoint import load_model_file
from medsight_ray.fit.runner import collect, init_from, prepare_data, run_stage, trainer_for
from medsight_ray.stages.registry import get_stage, pipeline
from medsight_ray.zoo.entries import fired_rules, product_stop, warn_only, would_stop
from tests.conftest import FIXTURES, run_cli

pytestmark = [pytest.mark.ray, pytest.mark.usefixtures("ray_local")]

TINY = ["fit.epochs=1", "fit.batch_size=16", "fit.cpus_per_worker=0.5", "data.image_size=32",
        "model.backbone.name=resnet10t"]


def _cfg(stage, *extra: str):
    return apply_overrides(stage.config_cls(), [*TINY, *extra])


def _part(state: dict[str, torch.Tensor], prefix: str) -> dict[str, torch.Tensor]:
    return {k: v for k, v in state.items() if k.startswith(prefix)}


@pytest.fixture(scope="module")
def concept_runs(synth_dir, tmp_path_factory):
    """The 3-stage pipeline, run once for the module: (data, {stage: result})."""
    data = prepare_data(str(synth_dir("concepts", rows=160)), "concepts")
    storage = tmp_path_factory.mktemp("pipeline")
    previous, results = None, {}
    for stage in pipeline("concepts"):
        results[stage.name] = run_stage(stage, _cfg(stage), data, str(storage), stage.name, previous)
        previous = results[stage.name].checkpoint
    return data, results


def test_three_stage_pipeline_keeps_frozen_parts_frozen(concept_runs) -> None:
    _, results = concept_runs
    states = {}
    for name, result in results.items():
        assert result.status == "completed", result.error
        assert result.epochs_run == 1 and result.checkpoint
        assert "val/" + get_stage("concepts", name).primary_metric in result.best
        meta = load_model_file(result.checkpoint)
        assert meta["task"] == "concepts" and meta["stage"] == name
        states[name] = meta["state_dict"]
    s1, s2, s3 = states["concepts"], states["prototypes"], states["diagnosis"]
    for prefix in ("backbone.", "concept_head."):  # stage 1's weights, BN statistics included
        assert all(torch.equal(v, _part(s2, prefix)[k]) for k, v in _part(s1, prefix).items())
        assert all(torch.equal(v, _part(s3, prefix)[k]) for k, v in _part(s1, prefix).items())
    for prefix in ("projector.", "prototypes"):
        assert any(not torch.equal(v, _part(s1, prefix)[k]) for k, v in _part(s2, prefix).items())
        assert all(torch.equal(v, _part(s3, prefix)[k]) for k, v in _part(s2, prefix).items())
    assert not torch.equal(s2["task_head.weight"], s3["task_head.weight"])


def test_a_run_continues_another_run_of_its_config_from_its_last_checkpoint(concept_runs, tmp_path: Path) -> None:
    """What a sweep does for a trial that repeats a run ASHA cut (``continue_from``): the
    new run starts where the other stopped, with its history, monitor and optimiser, and
    trains only the epochs it had not (here stage 1's one-epoch run, continued to two)."""
    from ray.train import Checkpoint

    data, results = concept_runs
    stage, source = get_stage("concepts", "concepts"), results["concepts"]
    started = time.perf_counter()
    trainer = trainer_for(stage, _cfg(stage, "fit.epochs=2"), data, str(tmp_path), "continued",
                          continue_from=Checkpoint(source.checkpoint))
    result = collect(stage, _cfg(stage, "fit.epochs=2"), trainer.fit(), started, str(tmp_path))
    assert result.status == "completed" and [h["epoch"] for h in result.history] == [1, 2]
    assert result.history[0] == source.history[0]  # epoch 1 is the other run's, not trained again
    # This run trained epoch 2 only: one checkpoint folder of its own.
    assert len([p for p in (tmp_path / "continued").glob("checkpoint_*") if p.is_dir()]) == 1
    assert result.time_parts["total"] > 0 and "first train batch" in result.time_parts


def test_chaining_refuses_another_dataset(concept_runs, synth_dir) -> None:
    _, results = concept_runs
    other = prepare_data(str(synth_dir("concepts", rows=160, seed=9)), "concepts")
    stage = get_stage("concepts", "prototypes")
    with pytest.raises(ConfigError, match="dataset changed between stages"):
        init_from(stage, _cfg(stage), results["concepts"].checkpoint, other)
    with pytest.raises(ConfigError, match="another task"):
        init_from(get_stage("grading"), _cfg(get_stage("grading")), results["concepts"].checkpoint, other)


def test_two_workers_train_grading_and_reduce_metrics(synth_dir, tmp_path: Path) -> None:
    data = prepare_data(str(synth_dir("grading", rows=90)), "grading")
    stage = get_stage("grading")
    result = run_stage(stage, _cfg(stage, "fit.workers=2", "fit.batch_size=8"), data, str(tmp_path), "two")
    assert result.status == "completed", result.error
    details = result.history[-1]["details"]
    # The metric covers every validation row exactly once, gathered from both workers.
    val_rows = sum(pq.read_metadata(f).num_rows for f in Path(data.uri).glob("val-*.parquet"))
    assert sum(details["support"].values()) == val_rows


def test_mixed_precision_skips_overflowing_steps_and_completes_healthy(synth_dir, tmp_path: Path, capsys) -> None:
    """The AMP path GPU runs take, on CPU: float16 autocast and GradScaler, started at a
    loss scale that overflows float16 so the first steps are skipped. They are counted
    and the scale falls; nothing is judged non-finite, and the run trains to the end."""
    code, text = _main(capsys, "--task", "grading", "--data", str(synth_dir("grading", rows=240)), "--out",
                       str(tmp_path / "amp"), *[x for s in [*TINY, "fit.epochs=2", "fit.amp_on_cpu=true",
                                                            "fit.amp_dtype=float16", "fit.amp_init_scale=4.0e6"]
                                                for x in ("--set", s)])
    assert code == 0, text[-3000:]
    (run,) = json.loads((tmp_path / "amp" / "summary.json").read_text())["runs"]
    assert run["status"] == "completed" and run["diagnoses"] == []
    first, second = run["history"]
    assert first["train/skipped_steps"] >= 1 and first["train/loss_scale"] < 4.0e6
    # It trained once the scale settled: most steps were taken, and the loss is finite.
    skipped = first["train/skipped_steps"] + second["train/skipped_steps"]
    assert skipped < (first["train/steps"] + second["train/steps"]) / 2
    assert second["train/loss_scale"] <= first["train/loss_scale"] and math.isfinite(second["train/loss"])


def _main(capsys, *args: str) -> tuple[int, str]:
    return run_cli(train.cli, "medsight_ray.train", args, capsys)


@pytest.mark.parametrize(("args", "message"), [
    (["--task", "detection"], "unknown task"),
    (["--task", "concepts", "--stage", "stage4"], "unknown stage"),
    (["--task", "concepts"], "several stages"),
    (["--task", "grading", "--set", "optim.learning_rate=1"], "unknown config key"),
    (["--task", "grading", "--set", "model.backbone.name=resnet_9000"], "unknown timm backbone"),
    (["--task", "grading", "--set", "model.backbone.pretrained_path=/nonexistent.pth"], "pretrained file"),
    (["--task", "grading", "--set", "fit.workers=64"], "cannot hold the requested workers"),
    (["--task", "segmentation"], "dataset is of another task family"),
])
def test_cli_usage_errors_exit_2(args: list[str], message: str, synth_dir, tmp_path: Path, capsys) -> None:
    code, err = _main(capsys, *args, "--data", str(synth_dir("grading", rows=60)), "--out", str(tmp_path / "o"))
    assert code == 2 and message in err, err


def test_cli_subprocess_has_no_traceback(tmp_path: Path) -> None:
    res = subprocess.run([sys.executable, "-m", "medsight_ray.train", "--task", "grading", "--data",
                          str(tmp_path / "none"), "--out", str(tmp_path / "o")], capture_output=True, text=True,
                         timeout=120)
    assert res.returncode == 2 and "does not exist" in res.stderr and "Traceback" not in res.stderr


def test_cli_trains_writes_summary_and_predicts(synth_dir, tmp_path: Path, capsys) -> None:
    out = tmp_path / "run"
    code, err = _main(capsys, "--task", "segmentation", "--data", str(synth_dir("segmentation", rows=60)),
                      "--out", str(out), *[a for kv in TINY for a in ("--set", kv)], "--set", "fit.torch_threads=2")
    assert code == 0, err
    summary = json.loads((out / "summary.json").read_text())
    run = summary["runs"][0]
    assert run["status"] == "completed" and run["epochs_run"] == 1
    assert run["history"][0]["fit/torch_threads"] == 2  # the worker reserves 0.5 CPU, so Ray alone would give 1
    assert {"val/dice", "val/pred_mean", "val/target_mean"} <= set(run["final"])
    # Where the one worker ran: a Ray node id (56 hex digits) on loopback.
    ((rank,),) = [g["ranks"] for g in run["outcome"]["workers"]]
    assert rank["rank"] == 0 and len(bytes.fromhex(rank["node_id"])) == 28 and rank["node_ip"] == "127.0.0.1"
    assert Path(summary["final_model"]).is_file()
    pred = subprocess.run([sys.executable, "-m", "medsight_ray.predict", "--checkpoint", summary["final_model"],
                           "--image", str(FIXTURES / "nuclei/images/tile_00.png"), "--out", str(tmp_path / "p")],
                          capture_output=True, text=True, timeout=120)
    assert pred.returncode == 0, pred.stderr
    assert (tmp_path / "p" / "mask.png").is_file() and (tmp_path / "p" / "overlay.png").is_file()


def test_kfold_cross_validation_by_patient_decodes_once(synth_dir, tmp_path: Path, capsys) -> None:
    # Stored at 40 px, trained at 32: the folds and the final run stream one decoded mirror.
    data = synth_dir("grading", rows=90, image_size=40)
    out = tmp_path / "cv"
    code, err = _main(capsys, "--task", "grading", "--data", str(data), "--out", str(out),
                      *[a for kv in TINY for a in ("--set", kv)], "--set", "kfold=2")
    assert code == 0, err
    summary = json.loads((out / "summary.json").read_text())
    cv = summary["cross_validation"]
    assert cv["metric"] == "val/f1_macro" and len(cv["folds"]) == 2 and len(cv["runs"]) == 2
    # Each fold validates on its own held-out patients: together they cover train + val once.
    rows = sum(pq.read_metadata(f).num_rows for f in Path(data).glob("*.parquet"))
    assert sum(sum(r["details"]["support"].values()) for r in cv["runs"]) == rows
    (mirror,) = (out / "ray" / "decoded").iterdir()
    manifest = json.loads((mirror / "decoded.json").read_text())
    assert summary["decoded"] == {"grading": str(mirror)} and manifest["size"] == 32
    assert sum(manifest["files"].values()) == rows


def test_health_monitor_stops_a_train_run_and_exits_1(synth_dir, tmp_path: Path, capsys) -> None:
    """Seed 004's recipe, BCE alone on mostly empty masks: diagnosed, stopped, exit 1."""
    data = synth_dir("segmentation", rows=200, empty_mask_fraction=0.95)
    out = tmp_path / "sick"
    code, text = _main(capsys, "--task", "segmentation", "--data", str(data), "--out", str(out),
                       *[a for kv in TINY for a in ("--set", kv)], "--set", "fit.epochs=4", "--set", "loss.name=bce")
    assert code == 1, text[-2000:]
    run = json.loads((out / "summary.json").read_text())["runs"][0]
    assert run["status"] == "stopped" and run["epochs_run"] < 4
    # Either names seed 004's cause: the collapse itself, or a loss that falls while Dice
    # sits at chance (a loss a trivial prediction satisfies); both prescribe Dice.
    first = run["diagnoses"][0]
    assert first["rule"] in ("prediction_collapse", "loss_falls_metric_flat")
    assert f"[FATAL] {first['rule']}" in text and "add Dice to BCE" in text


def test_a_learning_rate_far_too_high_is_named_at_epoch_1_before_ashas_first_rung(synth_dir,
                                                                                   tmp_path: Path) -> None:
    """The demo's lr = 1.0 stage-1 recipe: every step rewrites the weights (measured 4.5
    times their norm a step here) and the eval-mode outputs go constant. The monitor names
    it at epoch 1 and stops the run, before ASHA's grace period (2 epochs) could end it
    without a diagnosis. The cure it names is a lower learning rate."""
    stage = get_stage("concepts", "concepts")
    data = prepare_data(str(synth_dir("concepts", rows=160)), "concepts")
    cfg = _cfg(stage, "fit.epochs=3", "optim.lr=1.0")
    result = run_stage(stage, cfg, data, str(tmp_path), "dead")
    assert result.outcome.stop_reason == "health" and result.outcome.stop_epoch == 1
    first = result.outcome.diagnoses[0]
    assert (first["rule"], first["epoch"]) == ("oversized_updates", 1)
    assert first["evidence"]["update_ratio"] > 1.0
    assert first["remedies"][0].startswith("lower the learning rate")
    # The zoo trains once with every rule warning only and cuts the run where the fatal
    # rules would have stopped it: the same diagnoses as this stopped run, on the same
    # epoch-1 metrics (the run is deterministic and the monitor only watches).
    watched = run_stage(stage, warn_only(cfg), data, str(tmp_path), "watched")
    assert watched.outcome.stop_reason is None and watched.outcome.epochs_run == 3
    cut = product_stop(fired_rules(watched.outcome.diagnoses), would_stop(cfg))

    def said(fired: list[dict]) -> list[tuple]:
        return [(d["rule"], d["severity"], d["epoch"], d["step"]) for d in fired]

    assert said(cut) == said(fired_rules(result.outcome.diagnoses))
    def signals(entry: dict) -> dict:
        return {k: v for k, v in entry.items() if k.startswith(("train/", "val/"))}

    assert signals(watched.history[0]) == signals(result.history[0])


def test_the_console_shows_people_what_to_act_on_and_the_log_keeps_the_rest(synth_dir, tmp_path: Path) -> None:
    """A real process (own local Ray): one line per epoch, once, with the primary metric
    and health; Ray's worker output, result dicts and checkpoint notices only in the log."""
    out = tmp_path / "run"
    res = subprocess.run([sys.executable, "-m", "medsight_ray.train", "--task", "grading", "--data",
                          str(synth_dir("grading", rows=90)), "--out", str(out),
                          *[a for kv in TINY for a in ("--set", kv)], "--set", "fit.epochs=2"],
                         capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stdout[-3000:] + res.stderr[-3000:]
    lines = res.stdout.splitlines()
    for epoch in (1, 2):
        shown = [line for line in lines if f"epoch {epoch}/2 loss" in line]
        assert len(shown) == 1, lines
        assert "f1_macro" in shown[0] and "health ok" in shown[0]
    assert len(lines) <= 8, "\n".join(lines)
    assert lines[0].startswith(f"logs: {out}/logs/console.log")
    noise = ("RayTrainWorker", "Reporting training result", "Checkpoint successfully", "Started a local Ray")
    assert not [line for line in lines + res.stderr.splitlines() if any(n in line for n in noise)]
    log = (out / "logs" / "console.log").read_text()
    assert "RayTrainWorker" in log and "epoch 2/2" in log


def _steps_per_epoch(data: Path, batch: int) -> int:
    rows = sum(pq.read_table(f, columns=["split"]).column("split").to_pylist().count("train")
               for f in sorted(data.glob("train-*.parquet")))
    return rows // batch


def _explode_in_epoch_2(steps: int, prefix: str = "") -> list[str]:
    """Overrides under which the gradient rule fires at the third step of epoch 2 (every
    norm is above 0.001; the rule waits ``grace`` steps)."""
    return [f"{prefix}health.exploding_gradients.threshold=0.001", f"{prefix}health.exploding_gradients.growth=0",
            f"{prefix}health.exploding_gradients.grace={steps + 2}"]


def test_a_fatal_step_diagnosis_after_epoch_1_stops_the_run_and_exits_1(synth_dir, tmp_path: Path, capsys) -> None:
    """It used to be stamped with the previous epoch and dropped: exit 0, no diagnosis."""
    data = synth_dir("grading", rows=120)
    steps = _steps_per_epoch(data, 16)
    assert steps >= 3
    out = tmp_path / "late"
    code, text = _main(capsys, "--task", "grading", "--data", str(data), "--out", str(out),
                       *[a for kv in [*TINY, "fit.epochs=3", *_explode_in_epoch_2(steps)] for a in ("--set", kv)])
    assert code == 1, text[-2000:]
    assert "[FATAL] exploding_gradients" in text and "at epoch 2 step" in text
    run = json.loads((out / "summary.json").read_text())["runs"][0]
    assert run["status"] == "stopped" and run["epochs_run"] == 2
    (diagnosis,) = run["diagnoses"]
    assert (diagnosis["rule"], diagnosis["epoch"], diagnosis["step"]) == ("exploding_gradients", 2, steps + 3)


def test_a_pipeline_stops_at_the_stage_whose_late_step_diagnosis_is_fatal(synth_dir, tmp_path: Path,
                                                                          capsys) -> None:
    data = synth_dir("concepts", rows=160)
    steps = _steps_per_epoch(data, 16)
    out = tmp_path / "pipe"
    settings = [*TINY, "fit.epochs=3", *_explode_in_epoch_2(steps, "concepts.")]
    code, text = _main(capsys, "--task", "concepts", "--pipeline", "--data", str(data), "--out", str(out),
                       *[a for kv in settings for a in ("--set", kv)])
    assert code == 1, text[-2000:]
    summary = json.loads((out / "summary.json").read_text())
    assert [r["stage"] for r in summary["runs"]] == ["concepts"]
    assert summary["failed"] == "concepts: stopped by the health monitor"
    assert summary["runs"][0]["diagnoses"][0]["epoch"] == 2


def test_the_same_seed_repeats_a_one_worker_run_exactly(synth_dir, tmp_path: Path) -> None:
    """File order, local shuffle, resampling, flips, jitter and MixUp all draw from
    fit.seed: two runs give the same metrics; another seed gives others."""
    stage = get_stage("grading")
    data = prepare_data(str(synth_dir("grading", rows=120)), "grading")
    settings = ["fit.epochs=2", "fit.torch_threads=2", "mixup_prob=0.5", "sampler.balanced=true",
                "data.hflip=0.5", "data.vflip=0.5", "data.intensity=0.2", "fit.shuffle_buffer=32"]

    def run(seed: int, name: str) -> list[dict]:
        result = run_stage(stage, _cfg(stage, *settings, f"fit.seed={seed}"), data, str(tmp_path), name)
        assert result.status == "completed", result.error
        return [{k: v for k, v in h.items() if k.startswith(("train/loss", "val/"))} for h in result.history]

    first, again, other = run(5, "a"), run(5, "b"), run(6, "c")
    assert first == again
    assert [h["train/loss"] for h in first] != [h["train/loss"] for h in other]


def test_remedies_retrain_a_stopped_stage_with_its_cure_and_record_the_lineage(synth_dir, tmp_path: Path,
                                                                                capsys) -> None:
    """lr 3.0, a thousand times the grading default: every step rewrites the weights and
    a learning-rate rule stops the run at epoch 1. --remedies 1 retrains it at the stage
    default (one move, not x0.1 three times), which completes: exit 0, lineage recorded.
    Without --remedies the same run exits 1."""
    data = synth_dir("grading", rows=120)
    settings = [a for kv in [*TINY, "fit.epochs=2", "optim.lr=3.0"] for a in ("--set", kv)]
    out = tmp_path / "healed"
    code, text = _main(capsys, "--task", "grading", "--data", str(data), "--out", str(out), "--remedies", "1",
                       *settings)
    assert code == 0, text[-3000:]
    assert "remedy 1/1 for" in text and "optim.lr 3 -> 0.003" in text
    summary = json.loads((out / "summary.json").read_text())
    first, healed = summary["lineages"]["grading"]
    assert first["rule"] in ("oversized_updates", "exploding_gradients", "non_finite", "dead_outputs")
    assert first["status"] == "stopped" and first["overrides"] == ["optim.lr=0.003"]
    assert healed == {**healed, "attempt": 1, "status": "completed", "rule": None}
    assert summary["runs"][-1]["config"]["optim"]["lr"] == pytest.approx(0.003)
    # The cure moved what the diagnosis measured the right way: smaller steps.
    history = summary["runs"][-1]["history"]
    for key, signal in (("update_ratio", "train/update_ratio"), ("grad_norm", "train/grad_norm_max")):
        if math.isfinite(first["evidence"].get(key, math.nan)):
            assert max(h[signal] for h in history) < first["evidence"][key]
    plain = tmp_path / "plain"
    code, _ = _main(capsys, "--task", "grading", "--data", str(data), "--out", str(plain), *settings)
    assert code == 1
    assert "lineages" not in json.loads((plain / "summary.json").read_text())


def test_a_learning_rate_far_too_low_is_raised_and_the_weights_move(synth_dir, tmp_path: Path, capsys) -> None:
    """lr 1e-7: the weights barely move, a stall rule stops the run once it has 30 steps
    to judge, and its remedy raises the rate to the stage default. The remedied run's
    weights move at least 100x more per step than the evidence measured, past
    ``not_learning.max_update``, and the stall rule does not stop it again."""
    data = synth_dir("grading", rows=120)
    settings = [a for kv in [*TINY, "fit.epochs=3", "fit.batch_size=8", "optim.lr=1e-7"] for a in ("--set", kv)]
    out = tmp_path / "raised"
    code, text = _main(capsys, "--task", "grading", "--data", str(data), "--out", str(out), "--remedies", "1",
                       *settings)
    summary = json.loads((out / "summary.json").read_text())
    first, healed = summary["lineages"]["grading"]
    assert first["rule"] in ("not_learning", "chance_metric"), text[-3000:]
    assert first["overrides"] == ["optim.lr=0.003"]
    moved = max(h["train/update_ratio"] for h in summary["runs"][-1]["history"])
    assert moved > 100 * first["evidence"]["update_ratio"]
    assert moved >= apply_overrides(get_stage("grading").config_cls(), []).health.not_learning.max_update
    assert healed["rule"] != first["rule"]
