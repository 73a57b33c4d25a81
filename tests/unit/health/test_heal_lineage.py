"""``train.heal``: the lineage's own bookkeeping, with a stand-in for training.

The stand-in reproduces what seed 003's recipe was measured to do: with batches of 2
the run collapses onto a class whatever the class-balance recipe, and with the stage's
batches it completes. What is under test is which remedy each attempt gets.
"""

from __future__ import annotations

from typing import Any

import pytest

from medsight_ray.config import apply_overrides
from medsight_ray.fit.outcome import Outcome
from medsight_ray.fit.runner import StageResult
from medsight_ray.stages.registry import get_stage
from medsight_ray.train import heal


def _collapses_on_tiny_batches(stage: Any, cfg: Any, data: Any, storage: str, name: str,
                               init: str | None) -> StageResult:
    """A run stopped by ``class_collapse`` at epoch 2 while batches hold < 16 images."""
    if cfg.fit.batch_size < 16:
        stop = {"rule": "class_collapse", "severity": "fatal", "epoch": 2, "step": 0,
                "evidence": {"starved_classes": ["c"]}}
        outcome = Outcome().after_epoch(2, [stop], last_epoch=4, early_stop=False)
        metric = 0.3
    else:
        outcome = Outcome().after_epoch(4, [], last_epoch=4, early_stop=False)
        metric = 0.85
    return StageResult(stage.task, stage.name, {}, outcome, {"val/f1_macro": metric}, {}, "ckpt")


def test_each_attempt_gets_the_next_remedy_of_its_remedied_config(monkeypatch: pytest.MonkeyPatch) -> None:
    """Attempt 1 restores the balance recipe (batch 2 stays), attempt 2 the batch size.
    Counting the rule's earlier remedies as well skipped the batch size (the restored
    recipe no longer changes the remedied config, so the count passed over the next
    remedy) and the lineage ended unhealed."""
    monkeypatch.setattr("medsight_ray.fit.runner.run_stage", _collapses_on_tiny_batches)
    stage = get_stage("grading", "grading")
    broken = apply_overrides(stage.config_cls(), ["loss.name=focal", "mixup_prob=0.5", "fit.batch_size=2",
                                                  "sampler.balanced=true"])
    result, lineage = heal(stage, broken, None, "unused", "seed003", None, remedies=2)
    assert [a.status for a in lineage] == ["stopped", "stopped", "completed"]
    assert "sampler.balanced=false" in lineage[0].overrides and "loss.name=ce" in lineage[0].overrides
    assert lineage[1].overrides == ("fit.batch_size=32",)
    assert result.best["val/f1_macro"] == pytest.approx(0.85)
