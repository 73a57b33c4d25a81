"""The run's outcome: one record, kept by the fit loop, completed by the driver, read by
every consumer; the monitor's state survives a worker-group restart."""

from __future__ import annotations

import json
from pathlib import Path

from medsight_ray.fit.outcome import OUTCOME_FILE, Outcome, read_outcome
from medsight_ray.health.config import HealthConfig
from medsight_ray.health.monitor import HealthMonitor, with_rule
from medsight_ray.tune.sweep import trial_outcome

FATAL = {"rule": "not_learning", "severity": "fatal", "epoch": 3, "step": 0}
STEP = {"rule": "non_finite", "severity": "fatal", "epoch": 2, "step": 9}
WARN = {"rule": "class_collapse", "severity": "warn", "epoch": 1, "step": 0}


def test_the_loop_records_each_way_a_run_ends() -> None:
    running = Outcome().after_epoch(1, [WARN], last_epoch=4, early_stop=False)
    assert (running.status, running.stop_reason, running.epochs_run) == ("running", None, 1)
    health = running.after_epoch(3, [WARN, FATAL], last_epoch=4, early_stop=False)
    assert (health.status, health.stop_reason, health.fatal_rules, health.stop_epoch, health.stop_step) == (
        "stopped", "health", ("not_learning",), 3, 0)
    assert health.describe() == "health: not_learning" and len(health.diagnoses) == 2
    step = Outcome().after_epoch(2, [STEP], last_epoch=4, early_stop=False)
    assert (step.stop_epoch, step.stop_step) == (2, 9)
    patience = Outcome().after_epoch(2, [], last_epoch=4, early_stop=True)
    assert (patience.status, patience.stop_reason) == ("stopped", "early_stopping")
    done = Outcome().after_epoch(4, [WARN], last_epoch=4, early_stop=False)
    assert (done.status, done.stop_reason, done.describe()) == ("completed", None, None)


def test_the_driver_completes_only_what_the_loop_left_open() -> None:
    asha = Outcome().after_epoch(2, [], last_epoch=6, early_stop=False).ended_by_driver()
    assert (asha.status, asha.stop_reason, asha.stop_epoch) == ("stopped", "scheduler", 2)
    assert "ASHA" in asha.describe()
    health = Outcome().after_epoch(3, [FATAL], last_epoch=6, early_stop=False)
    assert health.ended_by_driver() == health
    failed = Outcome().after_epoch(1, [], last_epoch=6, early_stop=False).ended_by_driver("RuntimeError: boom")
    assert (failed.status, failed.stop_reason, failed.error, failed.stop_epoch) == (
        "errored", "error", "RuntimeError: boom", 2)
    assert Outcome.from_dict(json.loads(json.dumps(health.to_dict()))) == health


def test_a_sweep_reads_the_record_of_a_trial_tune_stopped(tmp_path: Path) -> None:
    """No driver summary (Tune ended the trial): the last checkpoint's record decides."""
    for name, outcome, status, reason in [
        ("asha", Outcome().after_epoch(2, [], 6, False), "stopped", "scheduler"),
        ("sick", Outcome().after_epoch(3, [FATAL], 6, False), "stopped", "health"),
    ]:
        (tmp_path / name).mkdir()
        (tmp_path / name / OUTCOME_FILE).write_text(json.dumps(outcome.to_dict()))
        assert read_outcome(tmp_path / name) == outcome
        got = trial_outcome({}, str(tmp_path / name), None)
        assert (got.status, got.stop_reason) == (status, reason)
    written = Outcome().after_epoch(6, [], 6, False).ended_by_driver()
    assert trial_outcome({"outcome": written.to_dict()}, None, None).status == "completed"


def _collapsed() -> dict:
    return {"pred_histogram": {"a": 0.97, "b": 0.03}, "support": {"a": 5, "b": 5},
            "f1_per_class": {"a": 0.6, "b": 0.1}, "f1_macro": 0.35}


def test_a_restored_monitor_keeps_its_streaks_and_diagnoses() -> None:
    """class_collapse needs 2 epochs running: epoch 3 before a restart and epoch 4 after
    make 2 with the restored state, 1 without (a restart used to start from zero)."""
    # A warning to carry over (a fatal one would end the judging: the run is stopped).
    cfg = with_rule(HealthConfig(), "non_finite", fatal=False)
    monitor = HealthMonitor(cfg, "grading/grading", "f1_macro")
    monitor.on_step(float("inf"), 1.0)
    for _ in range(30):  # the steps class_collapse waits for
        monitor.on_step(1.0, 1.0)
    for epoch in range(3):
        monitor.on_epoch(epoch, {"train/loss": 1.0 - 0.2 * epoch}, _collapsed() if epoch == 2 else {
            "pred_histogram": {"a": 0.5, "b": 0.5}, "support": {"a": 5, "b": 5},
            "f1_per_class": {"a": 0.6, "b": 0.6}, "f1_macro": 0.3 + 0.1 * epoch})
    state = json.loads(json.dumps(monitor.state_dict(), default=float))
    restored = HealthMonitor(cfg, "grading/grading", "f1_macro")
    restored.load_state_dict(state)
    assert [d.rule for d in restored.diagnoses] == ["non_finite"] and restored.epoch == 3
    assert "class_collapse" in [d.rule for d in restored.on_epoch(3, {"train/loss": 0.3}, _collapsed())]
    fresh = HealthMonitor(cfg, "grading/grading", "f1_macro")
    for _ in range(30):
        fresh.on_step(1.0, 1.0)
    assert fresh.on_epoch(3, {"train/loss": 0.3}, _collapsed()) == []


def test_each_worker_group_start_is_recorded_with_its_nodes_and_survives_the_checkpoint() -> None:
    a, b = {"node_id": "aa", "node_ip": "10.0.0.1"}, {"node_id": "bb", "node_ip": "10.0.0.2"}
    first = Outcome().placed(1, [a, b]).after_epoch(1, [], last_epoch=3, early_stop=False)
    # The node of rank 1 was lost in epoch 2; the restarted group resumes from epoch 1's checkpoint.
    restarted = first.placed(2, [a, {"node_id": "cc", "node_ip": "10.0.0.3"}])
    assert [g["from_epoch"] for g in restarted.workers] == [1, 2]
    assert [r["node_id"] for r in restarted.workers[0]["ranks"]] == ["aa", "bb"]
    assert [(r["rank"], r["node_id"]) for r in restarted.workers[1]["ranks"]] == [(0, "aa"), (1, "cc")]
    assert Outcome.from_dict(json.loads(json.dumps(restarted.to_dict()))) == restarted
    assert restarted.placement() == "2 workers on 2 nodes; restarted from epoch 2"
    assert Outcome().placed(1, [a, {**a}]).placement() == ""  # one group on one node: no news
    # A record written before workers were recorded still reads.
    old = {k: v for k, v in first.to_dict().items() if k != "workers"}
    assert Outcome.from_dict(old).workers == ()
