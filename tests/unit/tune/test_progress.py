"""The sweep's progress lines: remedy trials are named with their parent and counted
apart from the samples."""

from __future__ import annotations

from types import SimpleNamespace

from medsight_ray.tune.progress import SweepProgress
from medsight_ray.tune.trial import LINEAGE_KEY


def test_a_remedy_trial_is_named_with_its_parent_and_counted_apart(capsys) -> None:
    progress = SweepProgress("grading/grading", total=2, epochs=2)
    stopped = SimpleNamespace(trial_id="a1", config={"optim.lr": 3.0},
                              last_result={"epoch": 1, "health/fatal": 1.0})
    progress.on_trial_complete(0, [], stopped)
    remedy = SimpleNamespace(trial_id="b2", config={"optim.lr": 0.003, LINEAGE_KEY: {
        "parent": "a1", "overrides": ["optim.lr=0.003"]}}, last_result={"epoch": 2})
    progress.on_trial_complete(0, [], remedy)
    first, second = capsys.readouterr().out.strip().splitlines()
    assert "trial a1 stopped by health at epoch 1; 1/2 trials done" in first
    assert "trial b2 (remedy of a1: optim.lr=0.003) completed 2 epochs; 1/2 trials and 1 remedy trial done" in second


def test_a_restarted_trial_is_announced_and_not_counted_as_done(capsys) -> None:
    """A trial whose driver died (its node was lost) is restarted by Tune: the console says
    so, with the epoch it got to, and the trial still counts as running."""
    progress = SweepProgress("grading/grading", total=2, epochs=4)
    lost = SimpleNamespace(trial_id="c3", config={}, last_result={"epoch": 2}, num_failures=1, max_failures=1)
    progress.on_trial_recover(0, [], lost)
    progress.on_trial_complete(0, [], SimpleNamespace(trial_id="c3", config={}, last_result={"epoch": 4}))
    restart, done = capsys.readouterr().out.strip().splitlines()
    assert "trial c3 failed after epoch 2" in restart
    assert "restart 1 of 1 resumes it from its last checkpoint" in restart
    assert "trial c3 completed 4 epochs; 1/2 trials done" in done
