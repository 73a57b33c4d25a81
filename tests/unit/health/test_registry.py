"""One rule, one object: each rule's settings, check, causes and remedies live in one
registered class, and the registry refuses a rule that is not whole."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import pytest

from medsight_ray.config import apply_overrides, field_docs
from medsight_ray.errors import ConfigError
from medsight_ray.health.config import HealthConfig
from medsight_ray.health.rule import Finding, Rule, RuleConfig, register
from medsight_ray.health.rules import ALL_RULES, REGISTRY
from medsight_ray.stages.registry import get_stage


def test_the_config_has_one_field_per_registered_rule_each_documented() -> None:
    fields = [f.name for f in dataclasses.fields(HealthConfig)]
    assert fields == ["enabled", "export_metrics", "baseline_eval", *ALL_RULES]
    for name in ALL_RULES:
        rule = REGISTRY[name]
        assert isinstance(getattr(HealthConfig(), name), rule.Config)
        docs = field_docs(rule.Config)
        assert {f.name for f in dataclasses.fields(rule.Config)} <= set(docs), name


def _rule(**overrides: object) -> type[Rule]:
    """A whole epoch rule, then with ``overrides`` of its class attributes."""

    @dataclass(frozen=True)
    class Cfg(RuleConfig):
        """``probe``."""

    def check(cfg: Cfg, history: list, start: dict | None = None) -> Finding | None:
        return None

    attrs = {"name": "probe", "kind": "epoch", "Config": Cfg, "causes": ("a cause",), "fires_when": "never",
             "origin": "a test", "check": staticmethod(check),
             "remedies": staticmethod(lambda evidence, cfg, default: [])}
    attrs.update(overrides)
    return type("Probe", (Rule,), {k: v for k, v in attrs.items() if v is not None})


@pytest.mark.parametrize("broken, says", [
    ({"causes": ()}, "names no cause"),
    ({"origin": None}, "has no origin"),
    ({"kind": "hourly"}, "kind 'hourly'"),
    ({"name": "not_learning"}, "registered twice"),
    ({"check": staticmethod(lambda cfg, state, loss, grad_norm: None)}, "expected a epoch rule's check"),
    ({"remedies": None}, "does not define remedies"),
])
def test_a_rule_that_is_not_whole_is_refused_at_import(broken: dict, says: str) -> None:
    with pytest.raises(TypeError, match=says):
        register(_rule(**broken))
    assert "probe" not in REGISTRY


def test_a_setting_no_rule_can_mean_is_refused_by_name() -> None:
    cfg = get_stage("grading", "grading").config_cls()
    with pytest.raises(ConfigError) as err:
        apply_overrides(cfg, ["health.not_learning.patience=0"])
    assert err.value.where == "health.not_learning.patience" and "0" in err.value.got
    with pytest.raises(ConfigError) as err:
        apply_overrides(cfg, ["health.exploding_gradients.threshold=nan"])
    assert err.value.where == "health.exploding_gradients.threshold"
    assert apply_overrides(cfg, ["health.not_learning.patience=2"]).health.not_learning.patience == 2
