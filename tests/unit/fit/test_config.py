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
