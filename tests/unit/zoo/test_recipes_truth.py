"""The recipe corpus's truth: a run labelled by its own end, by the written definition."""

from __future__ import annotations

from tests.unit.zoo.benchmod import load_bench

recipes = load_bench("recipes")


def _epochs(losses: list[float], ratio: float, metric: float = 0.5) -> list[dict]:
    return [{"val/auc_macro": metric, "val/chance": 0.5, "train/loss": loss, "train/loss_start": 1.386,
             "train/update_ratio": ratio} for loss in losses]


def test_weights_that_did_not_move_are_a_low_rate_even_when_noise_ends_the_loss_above_its_start() -> None:
    # Definition 1 called this lr_high (nuclei at lr 1e-7): a flat loss a hair above its start.
    history = _epochs([1.386, 1.3861, 1.3859, 1.3862], ratio=2e-7)
    assert recipes.truth(history, "auc_macro") == ("failed", "lr_low")


def test_a_loss_that_rose_while_the_weights_moved_is_a_high_rate() -> None:
    assert recipes.truth(_epochs([1.5, 2.2, 3.1], ratio=0.02), "auc_macro") == ("failed", "lr_high")
    assert recipes.truth(_epochs([1.3, float("nan")], ratio=1e-6), "auc_macro") == ("failed", "lr_high")


def test_a_run_that_learned_and_kept_it_is_healthy_and_new_records_name_their_definition() -> None:
    history = _epochs([1.2, 0.8, 0.5], ratio=0.01)
    for h, auc in zip(history, (0.7, 0.85, 0.9)):
        h["val/auc_macro"] = auc
    assert recipes.truth(history, "auc_macro") == ("healthy", None)
    summary = recipes.summarise([{"name": "a", "seed": 0, "truth": "healthy", "truth_cause": None,
                                  "verdict": {"rule": None}, "wrong_way": False, "truth_definition": 2},
                                 {"name": "b", "seed": 0, "truth": "healthy", "truth_cause": None,
                                  "verdict": {"rule": None}, "wrong_way": False}])
    assert summary["truth_definitions"] == [1, 2] and summary["false_alarms"] == 0


def test_the_verdict_names_the_cause_its_evidence_supports() -> None:
    from medsight_ray.stages.registry import get_stage

    default = get_stage("grading").config_cls()
    inverted = {"rule": "dead_outputs", "severity": "fatal", "epoch": 2, "step": 0,
                "evidence": {"auc_macro": 0.3, "start_auc": 0.5, "auc_se": 0.02}}
    saturated = {**inverted, "evidence": {"score_spread": 0.0}}
    judged = recipes.verdict([inverted], default, default)
    assert judged["cause"] == "labels" and judged["remedy"] == {}
    judged = recipes.verdict([saturated], default, default)
    assert judged["cause"] == "lr_high" and judged["remedy"]["optim.lr"][1] < default.optim.lr
