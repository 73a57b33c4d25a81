"""Typed configs: YAML + overrides, coercion, and unknown keys named with the valid ones."""

from __future__ import annotations

from pathlib import Path

import pytest

from medsight_ray.config import apply_overrides, build, flatten, to_dict
from medsight_ray.errors import ConfigError
from medsight_ray.stages.concepts import ConceptsConfig
from medsight_ray.stages.grading import GradingConfig


def test_overrides_coerce_types_and_leave_the_original_alone() -> None:
    base = ConceptsConfig()
    cfg = apply_overrides(base, ["optim.lr=1e-4", "fit.epochs=3", "model.backbone.name=resnet18",
                                 "fit.use_gpu=false", "model.backbone.feature_index=2"])
    assert cfg.optim.lr == 1e-4 and isinstance(cfg.optim.lr, float)
    assert cfg.fit.epochs == 3 and cfg.model.backbone.name == "resnet18"
    assert cfg.fit.use_gpu is False and cfg.model.backbone.feature_index == 2
    assert base.optim.lr != 1e-4
    g = apply_overrides(GradingConfig(), {"sampler.class_fractions": "1,1,1,0.33"})
    assert g.sampler.class_fractions == (1.0, 1.0, 1.0, 0.33)


def test_unknown_keys_list_the_valid_ones() -> None:
    with pytest.raises(ConfigError, match="optim.backbone_lr_scale"):
        apply_overrides(ConceptsConfig(), ["optim.backbone_lr=0.1"])
    with pytest.raises(ConfigError, match="key=value"):
        apply_overrides(ConceptsConfig(), ["optim.lr"])


def test_wrong_types_are_named() -> None:
    with pytest.raises(ConfigError, match="fit.epochs.*an integer.*'many'"):
        apply_overrides(ConceptsConfig(), ["fit.epochs=many"])
    with pytest.raises(ConfigError, match="an integer"):
        apply_overrides(ConceptsConfig(), ["fit.epochs=2.5"])


def test_yaml_file_then_overrides(tmp_path: Path) -> None:
    (tmp_path / "c.yaml").write_text("optim:\n  lr: 0.01\nfit:\n  epochs: 5\n")
    cfg = build(ConceptsConfig, tmp_path / "c.yaml", ["fit.epochs=2"])
    assert cfg.optim.lr == 0.01 and cfg.fit.epochs == 2
    assert flatten(to_dict(cfg))["model.backbone.name"] == cfg.model.backbone.name
    (tmp_path / "bad.yaml").write_text("optim:\n  learning_rate: 0.01\n")
    with pytest.raises(ConfigError, match="learning_rate"):
        build(ConceptsConfig, tmp_path / "bad.yaml")
    (tmp_path / "list.yaml").write_text("- 1\n- 2\n")
    with pytest.raises(ConfigError, match="not a mapping"):
        build(ConceptsConfig, tmp_path / "list.yaml")


def _stage_configs() -> list[tuple[str, type]]:
    from medsight_ray.stages.registry import REGISTRY, _load_all

    _load_all()
    return sorted((f"{t}/{n}", s.config_cls) for (t, n), s in REGISTRY.items())


def _choices(cls: type) -> dict[str, tuple]:
    """Every ``Literal`` setting of a config: dotted key → its values."""
    import dataclasses
    import typing

    out: dict[str, tuple] = {}
    for f in dataclasses.fields(cls):
        hint = typing.get_type_hints(cls)[f.name]
        if typing.get_origin(hint) is typing.Literal:
            out[f.name] = typing.get_args(hint)
        elif dataclasses.is_dataclass(hint):
            out.update({f"{f.name}.{k}": v for k, v in _choices(hint).items()})
    return out


@pytest.mark.parametrize("stage, cls", _stage_configs(), ids=[s for s, _ in _stage_configs()])
def test_a_choice_outside_its_literal_is_refused_with_the_valid_values(stage: str, cls: type) -> None:
    choices = _choices(cls)
    assert {"optim.name", "optim.scheduler"} <= set(choices), stage
    for key, values in choices.items():
        for value in values:  # every listed value is accepted
            assert apply_overrides(cls(), {key: value}) is not None
        with pytest.raises(ConfigError) as err:
            apply_overrides(cls(), [f"{key}=not_a_choice"])
        assert key in str(err.value) and "'not_a_choice'" in str(err.value)
        assert all(repr(v) in str(err.value) for v in values), str(err.value)


def test_every_string_choice_of_the_stages_is_a_literal() -> None:
    """No plain ``str`` setting is left among the stage configs except the free-form
    ones (a timm model name, a file path)."""
    import dataclasses
    import typing

    free = {"model.backbone.name", "model.backbone.pretrained_path"}

    def strings(cls: type, prefix: str = "") -> set[str]:
        found = set()
        for f in dataclasses.fields(cls):
            hint = typing.get_type_hints(cls)[f.name]
            if dataclasses.is_dataclass(hint):
                found |= strings(hint, f"{prefix}{f.name}.")
            elif hint is str or str in typing.get_args(hint):
                found.add(f"{prefix}{f.name}")
        return found

    for stage, cls in _stage_configs():
        assert strings(cls) <= free, f"{stage}: {sorted(strings(cls) - free)} should be Literal choices"


@pytest.mark.parametrize("stage, cls", _stage_configs(), ids=[s for s, _ in _stage_configs()])
def test_every_key_has_a_one_line_doc(stage: str, cls: type) -> None:
    from medsight_ray.config import describe

    undocumented = [key for key, _, doc in describe(cls()) if not doc]
    assert undocumented == [], f"{stage}: add these to an Attributes: docstring section: {undocumented}"


def test_printed_config_reads_back_as_the_same_config(tmp_path: Path) -> None:
    from medsight_ray.config import format_config

    cfg = apply_overrides(GradingConfig(), ["optim.lr=0.02", "sampler.class_fractions=1,1,1,0.33",
                                            "model.backbone.feature_index=2", "loss.name=focal"])
    text = format_config(cfg, "grading/grading")
    assert "optim.lr: 0.02" in text and "# base learning rate" in text
    (tmp_path / "printed.yaml").write_text(text)
    assert build(GradingConfig, tmp_path / "printed.yaml") == cfg
