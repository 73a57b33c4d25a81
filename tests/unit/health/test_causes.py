"""A verdict names the causes its evidence and the run's config support, not every cause
its rule knows: naming focal loss on a cross-entropy run, or a learning rate too low on
a run at the default rate, sends the reader the wrong way."""

from __future__ import annotations

from typing import Any

import pytest

from medsight_ray.config import apply_overrides
from medsight_ray.health.rule import supported_causes
from medsight_ray.health.rules import REGISTRY
from medsight_ray.stages.registry import get_stage
from tests.unit.health.test_remedies import EVIDENCE, PERTURBED, STAGES, _keys


def _grading(*overrides: str) -> Any:
    return apply_overrides(get_stage("grading", "grading").config_cls(), list(overrides))


def _causes(rule: str, evidence: dict[str, Any], cfg: Any) -> tuple[str, ...]:
    return supported_causes(REGISTRY[rule], evidence, cfg)


@pytest.mark.parametrize("task, name", STAGES)
@pytest.mark.parametrize("overrides", PERTURBED)
def test_every_rule_names_some_of_its_own_causes_on_every_stage(task: str, name: str,
                                                                overrides: tuple[str, ...]) -> None:
    default = get_stage(task, name).config_cls()
    cfg = apply_overrides(default, [o for o in overrides if o.split("=")[0] in _keys(default)])
    for rule in REGISTRY:
        for evidence in (EVIDENCE, {**EVIDENCE, "start_auc": 0.5}, {}):
            chosen = _causes(rule, evidence, cfg)  # raises on none, or on one not its own
            assert chosen and len(set(chosen)) == len(chosen)
    # A replay without the run's config cannot choose: every cause.
    assert _causes("class_collapse", EVIDENCE, None) == REGISTRY["class_collapse"].causes


def test_class_collapse_names_only_the_recipe_parts_the_run_holds() -> None:
    focal, oversampled, starved_mix, mixup, elsewhere = REGISTRY["class_collapse"].causes
    collapse = {"top_class": "a", "predicted_share": 0.9, "true_share": 0.4}
    # The stage's own recipe (CE, clamped weights, no sampler, no MixUp): none of its parts.
    assert _causes("class_collapse", collapse, _grading()) == (elsewhere,)
    assert _causes("class_collapse", collapse, _grading("optim.name=sgd", "optim.lr=3.0")) == (elsewhere,)
    # Seed 003's recipe: focal on weights to 1e6, a sampler oversampling a class 3x, MixUp.
    seed003 = _grading("loss.name=focal", "loss.class_weight_power=1.5", "loss.class_weight_min=0.0",
                       "loss.class_weight_max=1000000", "mixup_prob=0.5", "fit.batch_size=2",
                       "sampler.balanced=true", "sampler.class_fractions=1,1,1,3")
    assert _causes("class_collapse", collapse, seed003) == (focal, oversampled, mixup)
    # The zoo's minority_never_predicted: a class mix that never draws one class.
    never = _grading("sampler.balanced=true", "sampler.class_fractions=1,1,1,0")
    assert _causes("class_collapse", {"starved_classes": ["d"]}, never) == (starved_mix,)
    # Heavier weights alone, on cross-entropy, are the first cause's weights.
    assert _causes("class_collapse", collapse, _grading("loss.class_weight_max=10")) == (focal,)


def test_learning_rate_causes_follow_the_rate_and_the_measured_weight_change() -> None:
    too_low = REGISTRY["vanishing_gradients"].causes[0]
    vanished = {"grad_norm": 1e-9, "steps_below": 20}
    # A gradient that vanished at the default rate is not a rate too low.
    assert too_low not in _causes("vanishing_gradients", vanished, _grading())
    assert _causes("vanishing_gradients", vanished, _grading("optim.lr=3e-5"))[0] == too_low
    # At chance while the weights move at a healthy pace (above not_learning's 2e-4 a
    # step): neither a rate too low nor one too high; weights at rest: too low first.
    low, high, labels, frozen = REGISTRY["chance_metric"].causes
    assert _causes("chance_metric", {"update_ratio": 1e-3}, _grading()) == (labels, frozen)
    assert _causes("chance_metric", {"update_ratio": 1e-7}, _grading())[0] == low
    # A rate 100x the default: outputs that died, or the labels.
    assert _causes("chance_metric", {"update_ratio": 1e-3}, _grading("optim.lr=0.3")) == (high, labels)


def test_a_collapse_on_the_stages_own_recipe_warns_and_one_its_recipe_can_cause_stops() -> None:
    """A stop promises a cause in the config and a cure. On the stage's own recipe
    class_collapse has neither, so it warns (measured: SGD lr 3 on real digits, every
    image one class at epochs 2-4, F1 0.97 by epoch 6); under seed 003's recipe it stops."""
    from medsight_ray.health.config import HealthConfig
    from medsight_ray.health.monitor import HealthMonitor

    support = {"a": 40, "b": 13, "c": 33, "d": 13}
    onto_one = {"f1_macro": 0.06, "chance": 0.145, "auc_macro": 0.6, "support": support,
                "pred_histogram": {"a": 0.0, "b": 1.0, "c": 0.0, "d": 0.0}}
    seed003 = _grading("loss.name=focal", "loss.class_weight_max=1000000", "sampler.balanced=true")
    for cfg, severity in ((_grading(), "warn"), (_grading("optim.name=sgd", "optim.lr=3.0"), "warn"),
                          (seed003, "fatal")):
        monitor = HealthMonitor(HealthConfig(), "grading/grading", "f1_macro", cfg)
        for epoch, loss in enumerate([1.4, 1.3, 1.2]):
            for _ in range(10):
                monitor.on_step(loss, 1.0)
            monitor.on_epoch(epoch, {"train/loss": loss}, onto_one)
        (d,) = [d for d in monitor.diagnoses if d.rule == "class_collapse"]
        assert d.severity == severity
