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
