"""The patient split rule."""

from __future__ import annotations

import pytest

from medsight_ray.data.splits import assign_splits
from medsight_ray.errors import ConfigError


def test_split_is_by_patient_deterministic_and_proportional() -> None:
    patients = [f"p{i // 3}" for i in range(3000)]  # 1000 patients, 3 images each
    a = assign_splits(patients, val_fraction=0.2, test_fraction=0.1, seed=1)
    assert a == assign_splits(reversed(patients), val_fraction=0.2, test_fraction=0.1, seed=1)
    assert set(a) == set(patients)
    counts = {s: sum(v == s for v in a.values()) for s in ("train", "val", "test")}
    assert counts == {"train": 700, "val": 200, "test": 100}
    assert a != assign_splits(patients, val_fraction=0.2, test_fraction=0.1, seed=2)


def test_tiny_sets_still_get_a_validation_patient() -> None:
    assert sorted(assign_splits(["a", "b"], val_fraction=0.1).values()) == ["train", "val"]
    assert sorted(assign_splits(["a", "b", "c"], 0.2, 0.2).values()).count("train") >= 1


def test_bad_fractions_are_rejected() -> None:
    with pytest.raises(ConfigError, match="val=0.7, test=0.5"):
        assign_splits(["a"], 0.7, 0.5)
