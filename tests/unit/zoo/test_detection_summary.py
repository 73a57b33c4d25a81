"""The detection bench's summary: recall counts only runs whose ground truth held, a
pathology present from epoch 1 must be named within ASHA's grace, and every alarm on a
healthy run is listed."""

from __future__ import annotations

from typing import Any

from tests.unit.zoo.benchmod import load_bench


def _bench() -> Any:
    return load_bench("detection")


def _zoo(name: str, seed: int, verified: bool, first: str | None, epoch: int | None, onset: int | None) -> dict:
    return {"name": name, "label": f"-synth-s{seed}", "pathology_verified": verified, "first_fatal": first,
            "first_fatal_epoch": epoch, "first_fatal_step": 0, "stopped": first is not None,
            "onset_epoch": onset, "steps_per_epoch": 10.0,
            "fired": [{"rule": first, "severity": "fatal", "epoch": epoch, "step": 0}] if first else []}


def test_recall_reads_only_runs_whose_ground_truth_held_and_alarms_are_listed() -> None:
    bench = _bench()
    rows = {
        # Present from epoch 1, named at epoch 1: within ASHA's grace.
        "zoo-lr_far_too_high-synth-s0": _zoo("lr_far_too_high", 0, True, "exploding_gradients", 1, 1),
        # Present from epoch 1 but named at epoch 3: stopped, yet too late for ASHA.
        "zoo-lr_far_too_high-synth-s1": _zoo("lr_far_too_high", 1, True, "exploding_gradients", 3, 1),
        # Ground truth did not hold: not counted for or against recall.
        "zoo-bce_on_empty_masks-synth-s0": _zoo("bce_on_empty_masks", 0, False, None, None, None),
        # Held, and the wrong rule came first: a miss.
        "zoo-bce_on_empty_masks-synth-s1": _zoo("bce_on_empty_masks", 1, True, "overfitting", 4, 3),
        "healthy-grading-s0": {"fired": []},
        "healthy-grading-s1": {"fired": [{"rule": "overfitting", "severity": "warning", "epoch": 5, "step": 0}]},
    }
    summary = bench.summarise(rows)
    assert (summary["verified_runs"], summary["verified_named_and_stopped"]) == (3, 2)
    assert (summary["from_epoch_1"], summary["from_epoch_1_named_in_grace"]) == (2, 1)
    assert summary["healthy_runs"] == 2 and summary["false_stops"] == 0
    assert [a["run"] for a in summary["alarms"]] == ["healthy-grading-s1"]
    assert summary["per_seed"][1]["zoo_verified"] == 2 and summary["per_seed"][1]["zoo_verified_named_and_stopped"] == 1
    text = bench.markdown(summary)
    assert "| bce_on_empty_masks (synth) | 2 | 1 | 0 | None ×1, overfitting ×1 | 1 |" in text
    assert "| healthy-grading-s1 | overfitting 5:0 |" in text
