"""A zoo run trains once with every rule warning only; the stop is where the fatal rules
would have made it. The cut must keep exactly what a stopped run records."""

from __future__ import annotations

from medsight_ray.zoo.entries import product_stop

FATAL = {"exploding_gradients", "class_collapse", "not_learning"}


def _fatal(d: dict) -> bool:
    return d["rule"] in FATAL


def _d(rule: str, epoch: int, step: int = 0) -> dict:
    return {"rule": rule, "severity": "warn", "epoch": epoch, "step": step}


def _cut(fired: list[dict]) -> list[tuple[str, int, int, str]]:
    return [(d["rule"], d["epoch"], d["step"], d["severity"]) for d in product_stop(fired, _fatal)]


def test_an_epoch_rule_stop_keeps_that_epochs_verdicts_and_nothing_after() -> None:
    fired = [_d("unmixed_batches", 1), _d("overfitting", 2), _d("class_collapse", 2), _d("diverging_loss", 2),
             _d("not_learning", 3), _d("exploding_gradients", 4, 40)]
    assert _cut(fired) == [("unmixed_batches", 1, 0, "warn"), ("overfitting", 2, 0, "warn"),
                           ("class_collapse", 2, 0, "fatal"), ("diverging_loss", 2, 0, "warn")]


def test_a_step_rule_stop_halts_the_epoch_there_and_its_epoch_rules_are_not_judged() -> None:
    fired = [_d("vanishing_gradients", 2, 12), _d("exploding_gradients", 2, 14), _d("non_finite", 2, 15),
             _d("class_collapse", 2)]
    assert _cut(fired) == [("vanishing_gradients", 2, 12, "warn"), ("exploding_gradients", 2, 14, "fatal")]


def test_a_run_without_a_fatal_rule_keeps_every_warning() -> None:
    fired = [_d("unmixed_batches", 1), _d("overfitting", 5)]
    assert _cut(fired) == [("unmixed_batches", 1, 0, "warn"), ("overfitting", 5, 0, "warn")]
    assert product_stop([], _fatal) == []
