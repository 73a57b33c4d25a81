"""Synthetic data: deterministic, realistic proportions, learnable, and knobs that bite."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest
from PIL import Image
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import f1_score, roc_auc_score

from medsight_ray.data.checks import check_dataset
from medsight_ray.data.synth import Knobs, synthesize
from medsight_ray.errors import ConfigError


def _rows(path: Path) -> list[dict]:
    return [r for f in sorted(path.glob("*.parquet")) for r in pq.read_table(f).to_pylist()]


def _pixels(data: bytes) -> np.ndarray:
    return np.asarray(Image.open(io.BytesIO(data)), dtype=np.float32) / 255


def test_same_seed_same_bytes_other_seed_other_bytes(tmp_path: Path) -> None:
    for task in ("concepts", "grading", "segmentation"):
        synthesize(task, tmp_path / "a", rows=20, image_size=32, seed=3)
        synthesize(task, tmp_path / "b", rows=20, image_size=32, seed=3)
        synthesize(task, tmp_path / "c", rows=20, image_size=32, seed=4)
        a, b, c = _rows(tmp_path / "a"), _rows(tmp_path / "b"), _rows(tmp_path / "c")
        assert a == b
        assert [r["image"] for r in a] != [r["image"] for r in c]


def test_concepts_patterns_sit_inside_their_boxes_and_prevalence_has_a_tail(synth_dir) -> None:
    rows = _rows(synth_dir("concepts", rows=600, image_size=64))
    prevalence = np.mean([r["concepts"] for r in rows], axis=0)
    assert prevalence[0] > 0.1 and prevalence[-1] < 0.06  # common head, rare tail
    no_finding = np.array([r["targets"][-1] for r in rows])
    assert no_finding.tolist() == [int(not any(r["concepts"])) for r in rows]
    # The pattern makes pixels inside a box deviate from the background far more than outside.
    inside, outside = [], []
    for r in rows[:200]:
        img = _pixels(r["image"])
        for b in r["boxes"]:
            y0, y1, x0, x1 = (int(v * 64) for v in (b["y_min"], b["y_max"], b["x_min"], b["x_max"]))
            inside.append(img[y0:y1, x0:x1].std())
        if not r["boxes"]:
            outside.append(img[16:48, 8:56].std())
    assert np.mean(inside) > 1.5 * np.mean(outside)


def _features(rows: list[dict], size: int = 16) -> np.ndarray:
    return np.stack([np.asarray(Image.open(io.BytesIO(r["image"])).resize((size, size)), dtype=np.float32).ravel()
                     / 255 for r in rows])


def test_grading_is_learnable_imbalanced_like_cataract_and_signal_zero_is_chance(tmp_path: Path) -> None:
    def fit(signal: float) -> float:
        out = tmp_path / f"g{signal}"
        synthesize("grading", out, rows=800, image_size=32, seed=0, knobs=Knobs(signal=signal))
        rows = _rows(out)
        train = [r for r in rows if r["split"] == "train"]
        val = [r for r in rows if r["split"] == "val"]
        model = LogisticRegression(max_iter=2000).fit(_features(train), [r["label"] for r in train])
        return f1_score([r["label"] for r in val], model.predict(_features(val)), average="macro")

    assert fit(1.0) > 0.8
    assert fit(0.0) < 0.45
    labels = [r["label"] for r in _rows(tmp_path / "g1.0")]
    shares = np.bincount(labels, minlength=4) / len(labels)
    assert np.allclose(shares, [0.41, 0.13, 0.33, 0.13], atol=0.05)


def test_segmentation_objects_are_brighter_and_knobs_make_empty_and_unlabelled_masks(synth_dir) -> None:
    rows = _rows(synth_dir("segmentation", rows=100, image_size=32))
    scores, truth = [], []
    for r in rows:
        scores.extend(_pixels(r["image"]).ravel())
        truth.extend((_pixels(r["mask"]) > 0.5).ravel())
    assert roc_auc_score(truth, scores) > 0.95
    rows = _rows(synth_dir("segmentation", rows=200, image_size=32, empty_mask_fraction=0.8,
                           unlabelled_fraction=0.5))
    empty = np.mean([not _pixels(r["mask"]).any() for r in rows])
    unlabelled = np.mean([not r["has_segmentation"] for r in rows])
    assert 0.8 < empty < 0.98
    assert 0.03 < unlabelled < 0.2  # half of the ~20 % non-empty rows


def test_knobs_reproduce_the_seeds_data_failures(synth_dir) -> None:
    zero = check_dataset(synth_dir("concepts", rows=200, zero_label_column="Cardiomegaly"))
    assert "all_zero_column" in zero.errors.codes()
    assert any("Cardiomegaly" in p.where for p in zero.errors.examples)
    broken = check_dataset(synth_dir("concepts", rows=200, broken_box_fraction=0.3))
    assert broken.errors.codes() == {"box_order"}
    noisy = check_dataset(synth_dir("concepts", rows=200, label_noise=0.1))
    assert noisy.ok, noisy.format()


def test_unknown_knob_lists_the_known_ones() -> None:
    with pytest.raises(ConfigError, match="label_noise"):
        Knobs.from_pairs(["labelnoise=0.1"])
    with pytest.raises(ConfigError, match="fraction in \\[0, 1\\]"):
        Knobs(empty_mask_fraction=1.5)
