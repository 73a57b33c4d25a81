"""Remedies as data: every change names a valid key of every stage's config, each is
sized from the evidence, and a remedy that would change nothing is skipped."""

from __future__ import annotations

from typing import Any

import pytest

from medsight_ray.config import apply_overrides
from medsight_ray.health.lineage import next_attempt
from medsight_ray.health.remedies import (
    Advice,
    Remedy,
    next_remedy,
    plan,
    value_of,
)
from medsight_ray.health.rules import ALL_RULES, REGISTRY
from medsight_ray.stages.registry import get_stage

STAGES = [("concepts", "concepts"), ("concepts", "prototypes"), ("concepts", "diagnosis"),
          ("grading", "grading"), ("segmentation", "segmentation")]

#: Evidence of every kind a rule reports (a planner reads what it knows and ignores the rest).
EVIDENCE = {"update_ratio": 3.0, "lowest_epoch": 4, "auc_macro": 0.3, "auc_se": 0.02, "grad_norm": 1e3,
            "loss_drop": 0.0, "metric_gain": 0.0}

#: Configs a user could have written: the default, and learning rates 100x off either way
#: with small batches, no augmentation and a re-weighting recipe where the stage has one.
PERTURBED = (
    (),
    ("optim.lr=0.3", "fit.batch_size=2", "data.hflip=0", "data.intensity=0"),
    ("optim.lr=3e-5", "optim.backbone_lr_scale=0.01", "fit.shuffle_buffer=16"),
)


def _default(task: str, name: str) -> Any:
    return get_stage(task, name).config_cls()


def test_every_rule_has_a_planner() -> None:
    assert set(REGISTRY) == set(ALL_RULES)


@pytest.mark.parametrize("task, name", STAGES)
@pytest.mark.parametrize("rule", sorted(REGISTRY))
@pytest.mark.parametrize("overrides", PERTURBED)
def test_every_remedy_of_every_rule_applies_to_every_stage(task: str, name: str, rule: str,
                                                          overrides: tuple[str, ...]) -> None:
    default = _default(task, name)
    extra = [o for o in overrides if o.split("=")[0] in _keys(default)]
    cfg = apply_overrides(default, extra)
    steps = plan(rule, EVIDENCE, cfg, default)
    assert steps, f"{rule} on {task}/{name} has no remedy, not even advice"
    for step in steps:
        if isinstance(step, Advice):
            assert step.words()
            continue
        # Every change names a key of this stage's config, and applying it yields that value.
        for change in step.changes:
            assert change.key in _keys(default), f"{rule}: {change.key} is not a key of {task}/{name}"
        healed = step.apply(cfg)
        for key, value in step.changed(cfg).items():
            expected = pytest.approx(value) if isinstance(value, float) else value
            assert value_of(healed, key) == expected
            assert key in step.words(cfg)


def _keys(cfg: Any) -> set[str]:
    from medsight_ray.config import flatten, to_dict

    return set(flatten(to_dict(cfg)))


def test_a_learning_rate_orders_of_magnitude_too_high_goes_back_to_the_default() -> None:
    """The demo's lr 1.0 on stage 1 (default 3e-3): one move to the default, not x0.1 twice."""
    default = _default("concepts", "concepts")
    cfg = apply_overrides(default, ["optim.lr=1.0"])
    first = next_remedy(plan("oversized_updates", {"update_ratio": 4.47}, cfg, default), cfg)
    assert first is not None and first.changed(cfg) == {"optim.lr": pytest.approx(3e-3)}
    assert "optim.lr 1 -> 0.003" in first.words(cfg)
    # SGD at 1e4 (the zoo's lr_far_too_high): the default is Adam's rate, with Adam.
    sgd = apply_overrides(default, ["optim.name=sgd", "optim.lr=1e4"])
    back = next_remedy(plan("exploding_gradients", {}, sgd, default), sgd)
    assert back is not None and back.changed(sgd) == {"optim.name": "adamw", "optim.lr": pytest.approx(3e-3)}


def test_a_learning_rate_near_the_default_moves_by_what_the_weight_change_asks() -> None:
    """At 3x the default, each step moving the weights 0.15 of their norm: x0.1 brings it
    to a healthy 0.015; unmeasured, x0.1 as well; never more than x0.5 or less than x0.01."""
    default = _default("grading", "grading")
    cfg = apply_overrides(default, ["optim.lr=0.009"])
    for ratio, factor in ((0.15, 0.1), (0.02, 0.5), (100.0, 0.01)):
        remedy = next_remedy(plan("oversized_updates", {"update_ratio": ratio}, cfg, default), cfg)
        assert remedy is not None and remedy.changed(cfg)["optim.lr"] == pytest.approx(0.009 * factor)
    unmeasured = next_remedy(plan("diverging_loss", {}, cfg, default), cfg)
    assert unmeasured is not None and unmeasured.changed(cfg)["optim.lr"] == pytest.approx(0.0009)


def test_the_seeds_stalled_stage_1_gets_its_learning_rates_back() -> None:
    """Seed 001: lr 1e-4 with backbone scale 0.01 and head scale 0.2 (backbone 1e-6,
    head 2e-5): raise every group to the stage default at once."""
    default = _default("concepts", "concepts")
    cfg = apply_overrides(default, ["optim.lr=1e-4", "optim.backbone_lr_scale=0.01", "optim.head_lr_scale=0.2"])
    remedy = next_remedy(plan("not_learning", {"update_ratio": 1.7e-5}, cfg, default), cfg)
    assert remedy is not None
    assert remedy.changed(cfg) == {"optim.lr": pytest.approx(3e-3), "optim.backbone_lr_scale": 1.0,
                                   "optim.head_lr_scale": 1.0}
    assert "raise" in remedy.why
    # A stall at the default rates: up by what the weight change asks (0.015 / 0.003 = 5x).
    slow = next_remedy(plan("not_learning", {"update_ratio": 0.003}, default, default), default)
    assert slow is not None and slow.changed(default) == {"optim.lr": pytest.approx(0.015)}


def test_remedies_lower_the_learning_rate_when_it_is_too_high_and_never_raise_it() -> None:
    default = _default("grading", "grading")
    cfg = apply_overrides(default, ["optim.lr=0.3"])
    for rule in ("non_finite", "exploding_gradients", "oversized_updates", "diverging_loss", "dead_outputs",
                 "chance_metric"):
        lrs = [s.apply(cfg).optim.lr for s in plan(rule, {}, cfg, default) if isinstance(s, Remedy)]
        assert lrs and all(lr <= 0.3 for lr in lrs) and min(lrs) < 0.3, rule


def test_a_remedy_the_config_already_holds_is_skipped() -> None:
    """The seed-003 remedy restores the class-balance recipe: on a trial already using it,
    the next applicable remedy comes first; advice is never applied."""
    default = _default("grading", "grading")
    broken = apply_overrides(default, ["loss.name=focal", "mixup_prob=0.5", "fit.batch_size=2"])
    steps = plan("class_collapse", {}, broken, default)
    first = next_remedy(steps, broken)
    assert first is not None and first.changed(broken) == {"loss.name": "ce", "mixup_prob": 0.0}
    second = next_remedy(steps, broken, tried=[first.why])
    assert second is not None and second.changed(broken) == {"fit.batch_size": 32}
    # On the default recipe the balance remedy changes nothing: skipped. A class never
    # predicted gets even sampling; a collapse onto one class has only advice left.
    starved = next_remedy(plan("class_collapse", {"starved_classes": ["d"]}, default, default), default)
    assert starved is not None and starved.changed(default) == {"sampler.balanced": True}
    assert next_remedy(plan("class_collapse", {"top_class": "a"}, default, default), default) is None
    assert next_remedy([Advice("fix the data")], default) is None


def test_overfitting_regularises_then_stops_at_the_best_epoch() -> None:
    """Regularising removes the cause and raises the peak; stopping early only keeps it."""
    default = _default("grading", "grading")
    cfg = apply_overrides(default, ["fit.epochs=30", "loss.label_smoothing=0", "data.hflip=0", "data.intensity=0"])
    steps = plan("overfitting", {"lowest_epoch": 7}, cfg, default)
    first = next_remedy(steps, cfg)
    assert first is not None and first.changed(cfg) == {"data.hflip": 0.5, "data.intensity": 0.1,
                                                        "loss.label_smoothing": 0.1}
    assert next_remedy(steps, cfg, tried=[first.why]).changed(cfg) == {"fit.epochs": 8}
    # Already regularised: stopping at the best epoch comes first.
    regular = apply_overrides(default, ["fit.epochs=30", "loss.label_smoothing=0.1"])
    assert next_remedy(plan("overfitting", {"lowest_epoch": 7}, regular, default), regular).changed(regular) == {
        "fit.epochs": 8}


def test_prototype_collapse_raises_the_temperature_toward_one_half() -> None:
    default = _default("concepts", "prototypes")
    cfg = apply_overrides(default, ["loss.temperature=0.1"])
    remedy = next_remedy(plan("prototype_collapse", {}, cfg, default), cfg)
    assert remedy is not None and remedy.changed(cfg) == {"loss.temperature": pytest.approx(0.3)}
    at_half = apply_overrides(default, ["loss.temperature=0.5"])
    skipped = next_remedy(plan("prototype_collapse", {}, at_half, default), at_half)
    assert skipped is not None and skipped.changed(at_half) == {"optim.prototype_lr_scale": pytest.approx(0.1)}


def test_a_lineage_takes_the_next_remedy_on_its_remedied_config() -> None:
    """Seed 003's recipe as a lineage runs it: the balance recipe restored, the run
    still collapses (batch 2 is left), so the second attempt, asked on the remedied
    config with the applied remedy named as tried, gets larger batches. (The
    bookkeeping that fed the wrong tried list is tested through ``train.heal`` in
    ``test_heal_lineage.py``.)"""
    default = _default("grading", "grading")
    broken = apply_overrides(default, ["loss.name=focal", "mixup_prob=0.5", "fit.batch_size=2",
                                       "sampler.balanced=true"])
    evidence = {"starved_classes": ["c"]}
    first = next_attempt([{"rule": "class_collapse", "severity": "fatal", "epoch": 3, "evidence": evidence}],
                         broken, default, [])[1]
    assert first is not None and "sampler.balanced" in first.changed(broken)
    remedied = first.apply(broken)
    second = next_attempt([{"rule": "class_collapse", "severity": "fatal", "epoch": 5, "evidence": evidence}],
                          remedied, default, [first.why])[1]
    assert second is not None and second.changed(remedied) == {"fit.batch_size": 32}


def test_a_scaling_remedy_is_not_applied_twice_in_a_lineage() -> None:
    """x0.1 on the lr would apply again and again: once tried, the next remedy comes."""
    default = _default("grading", "grading")
    cfg = apply_overrides(default, ["optim.lr=0.01"])
    stop = [{"rule": "exploding_gradients", "severity": "fatal", "epoch": 1, "evidence": {}}]
    first = next_attempt(stop, cfg, default, [])[1]
    assert first is not None and first.changed(cfg) == {"optim.lr": pytest.approx(0.001)}
    lowered = first.apply(cfg)
    second = next_attempt(stop, lowered, default, [first.why])[1]
    assert second is not None and second.changed(lowered) == {"optim.warmup_fraction": 0.1}


def test_class_collapse_keeps_what_helps_the_minorities_when_they_are_the_neglected_ones() -> None:
    """A cure points against the imbalance measured. A minority never predicted under an
    oversampling, heavily weighted recipe is not cured by taking those away (that
    starves it further); a minority that took the predictions is (seed 003)."""
    default = _default("grading", "grading")
    cfg = apply_overrides(default, ["sampler.balanced=true", "loss.class_weight_power=2.0",
                                    "loss.class_weight_max=5.0", "loss.name=focal", "mixup_prob=0.5"])
    starved_minority = {"starved_classes": ["b"], "epochs": 5, "classes": 4, "true_shares": {"b": 0.13}}
    changed = next_remedy(plan("class_collapse", starved_minority, cfg, default), cfg).changed(cfg)
    # The focal loss and MixUp go; the oversampling and the heavier weights stay.
    assert changed == {"loss.name": "ce", "mixup_prob": default.mixup_prob}
    # The zoo's minority_never_predicted: a class mix that never draws the starved minority.
    # The mix goes back to even; the oversampling that then draws it stays.
    never = apply_overrides(default, ["sampler.balanced=true", "sampler.class_fractions=1,1,1,0"])
    changed = next_remedy(plan("class_collapse", starved_minority, never, default), never).changed(never)
    assert list(changed) == ["sampler.class_fractions"] and not changed["sampler.class_fractions"]
    # Majorities starved, or a collapse onto one class (which class can change from epoch to
    # epoch, so it is no direction): the whole recipe comes back.
    minority_took = {"top_class": "a", "predicted_share": 0.95, "true_share": 0.4, "classes": 4}
    starved_majorities = {"starved_classes": ["a", "c"], "epochs": 5, "classes": 4,
                          "true_shares": {"a": 0.4, "c": 0.33}}
    for evidence in (minority_took, starved_majorities, {"starved_classes": ["b"]}):
        changed = next_remedy(plan("class_collapse", evidence, cfg, default), cfg).changed(cfg)
        assert changed["sampler.balanced"] is False and changed["loss.class_weight_power"] == 1.0


def test_vanishing_gradients_raise_a_low_rate_to_the_default_and_leave_a_default_rate_alone() -> None:
    """A gradient does not depend on the learning rate, so a vanished one is no reason to
    raise a rate that is not low: at the default only advice is left; 100x below it the
    rate comes back to the default (not x10 past it); a pretrained backbone keeps its own."""
    default = _default("grading", "grading")
    evidence = {"grad_norm": 1e-9, "steps_below": 20}
    assert next_remedy(plan("vanishing_gradients", evidence, default, default), default) is None
    high = apply_overrides(default, ["optim.lr=0.03"])
    assert next_remedy(plan("vanishing_gradients", evidence, high, default), high) is None
    low = apply_overrides(default, ["optim.lr=3e-5"])
    assert next_remedy(plan("vanishing_gradients", evidence, low, default), low).changed(low) == {
        "optim.lr": pytest.approx(default.optim.lr)}
    near = apply_overrides(default, ["optim.lr=1e-3"])
    assert next_remedy(plan("vanishing_gradients", evidence, near, default), near).changed(near) == {
        "optim.lr": pytest.approx(default.optim.lr)}
    tuned = apply_overrides(default, ["optim.lr=1e-4", "model.backbone.pretrained_path=backbone.pt"])
    changed = next_remedy(plan("vanishing_gradients", evidence, tuned, default), tuned).changed(tuned)
    assert set(changed) == {"optim.head_lr_scale"}
