"""Metrics: undefined AUC is excluded and counted, never 0.5; segmentation counts add up."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from medsight_ray.metrics.classification import multiclass_metrics, multilabel_metrics
from medsight_ray.metrics.localisation import box_statistics, localisation_metrics
from medsight_ray.metrics.segmentation import confusion_counts, segmentation_metrics


def test_single_label_columns_are_excluded_from_the_macro() -> None:
    labels = np.array([[1, 0, 0], [0, 0, 1], [1, 0, 1], [0, 0, 0]])
    scores = np.array([[0.9, 0.5, 0.2], [0.1, 0.5, 0.8], [0.8, 0.5, 0.6], [0.2, 0.5, 0.1]])
    m = multilabel_metrics(scores, labels, ("a", "b", "c"))
    assert m["auc_excluded"] == 1 and math.isnan(m["auc_per_class"]["b"])
    assert m["auc_macro"] == pytest.approx(1.0)  # mean of a and c only, not (1 + 0.5 + 1) / 3
    assert m["f1_per_class"]["a"] == pytest.approx(1.0)


def test_multiclass_collapse_shows_in_f1_and_histogram() -> None:
    labels = np.array([0, 0, 1, 1, 2, 2])
    collapsed = np.tile([0.9, 0.05, 0.05], (6, 1))
    m = multiclass_metrics(collapsed, labels, ("x", "y", "z"))
    assert m["pred_histogram"] == {"x": 1.0, "y": 0.0, "z": 0.0}
    assert m["f1_per_class"]["y"] == 0.0 and m["f1_macro"] < 0.3
    assert m["confusion"][1] == [2, 0, 0]


def test_segmentation_metrics_from_counts() -> None:
    pred = np.array([[[1, 1], [0, 0]], [[0, 0], [0, 0]]])
    target = np.array([[[1, 0], [0, 0]], [[0, 0], [0, 1]]])
    counts = confusion_counts(pred, target)
    assert counts.tolist() == [[1, 1, 0, 2], [0, 0, 1, 3]]
    m = segmentation_metrics(counts)
    assert m["dice"] == pytest.approx(2 / (2 + 1 + 1)) and m["iou"] == pytest.approx(1 / 3)
    assert m["pred_mean"] == pytest.approx(2 / 8) and m["target_mean"] == pytest.approx(2 / 8)
    assert math.isnan(segmentation_metrics(confusion_counts(np.zeros((1, 2, 2)), np.zeros((1, 2, 2))))["dice"])


def test_localisation_pointing_and_energy() -> None:
    boxes = torch.tensor([[[0, 0.0, 0.0, 0.5, 1.0]]])
    good = torch.tensor([[[[5.0, -5.0], [5.0, -5.0]]]])
    m = localisation_metrics(box_statistics(good, boxes))
    assert m["pointing"] == 1.0 and m["energy_ratio"] > 50
    bad = localisation_metrics(box_statistics(-good, boxes))
    assert bad["pointing"] == 0.0 and bad["energy_ratio"] < 0.02


def test_chance_levels_are_the_metric_of_a_skill_less_model() -> None:
    from sklearn.metrics import f1_score

    from medsight_ray.metrics.classification import constant_f1_macro
    from medsight_ray.metrics.segmentation import trivial_dice

    labels = np.array([0] * 41 + [1] * 13 + [2] * 33 + [3] * 13)
    # Hand-computed: class 0 (41 %) everywhere, F1_0 = 2 x 0.41 / 1.41, the others 0.
    assert constant_f1_macro(labels, 4) == pytest.approx(2 * 0.41 / 1.41 / 4)
    # ... and that is what scikit-learn gives the constant predictor, and better than any other constant.
    for c in range(4):
        constant = f1_score(labels, np.full_like(labels, c), average="macro", labels=[0, 1, 2, 3], zero_division=0)
        assert constant <= constant_f1_macro(labels, 4) + 1e-12
    assert multiclass_metrics(np.eye(4)[labels], labels, tuple("abcd"))["chance"] == constant_f1_macro(labels, 4)
    # Dice: predicting every pixel of a split with 20 % foreground gives 2 x 0.2 / 1.2.
    counts = confusion_counts(np.ones((1, 10, 10)), (np.arange(100).reshape(1, 10, 10) < 20).astype(int))
    m = segmentation_metrics(counts)
    assert m["dice"] == pytest.approx(trivial_dice(0.2)) == pytest.approx(m["chance"]) == pytest.approx(1 / 3)


def test_score_spread_is_zero_for_constant_outputs_and_the_auc_error_shrinks_with_the_split() -> None:
    from medsight_ray.metrics.classification import chance_auc_se, score_spread

    rng = np.random.default_rng(0)
    assert score_spread(np.full((50, 3), 0.2)) == pytest.approx(0.0, abs=1e-12)
    live = np.column_stack([np.full(50, 0.2), rng.uniform(0, 1, 50)])
    assert score_spread(live) == pytest.approx(live[:, 1].std())  # the liveliest output counts
    # Hanley-McNeil at AUC 0.5 for one column of 10 positives, 40 negatives: sqrt(51 / 4800).
    one = np.array([1] * 10 + [0] * 40)[:, None]
    assert chance_auc_se(one) == pytest.approx(math.sqrt(51 / 4800))
    # The macro of 4 such columns wanders half as far; a 10x larger split about 3x less.
    assert chance_auc_se(np.tile(one, 4)) == pytest.approx(math.sqrt(51 / 4800) / 2)
    assert chance_auc_se(np.repeat(one, 10, axis=0)) < chance_auc_se(one) / 3
    # Measured against random scores: the spread of a skill-less AUC matches the formula.
    from sklearn.metrics import roc_auc_score

    aucs = [roc_auc_score(one[:, 0], rng.uniform(size=50)) for _ in range(2000)]
    assert float(np.std(aucs)) == pytest.approx(chance_auc_se(one), rel=0.1)


def test_the_validation_loss_comes_with_its_standard_error() -> None:
    from medsight_ray.fit.stage import validation_loss

    # Hand-computed: mean 2, sample std sqrt(((1-2)^2 + 0 + (3-2)^2) / 2) = 1, SE 1 / sqrt(3).
    assert validation_loss(np.array([1.0, 2.0, 3.0])) == pytest.approx({"loss": 2.0, "loss_se": 1 / math.sqrt(3)})
    # Identical losses: no spread. One image: the SE is unknown, never 0.
    assert validation_loss(np.array([0.5] * 4))["loss_se"] == 0.0
    assert math.isnan(validation_loss(np.array([0.5]))["loss_se"])
    # A non-finite image loss is not dropped: it shows.
    assert math.isnan(validation_loss(np.array([0.5, float("nan")]))["loss"])


def test_a_batch_reduced_loss_is_computed_image_by_image() -> None:
    from medsight_ray.fit.stage import per_image_loss

    # A soft Dice over the batch is not the mean of per-image Dice: each image gets its own.
    pred = torch.tensor([[1.0, 1.0], [0.0, 1.0]])
    target = torch.tensor([[1.0, 1.0], [1.0, 0.0]])

    def dice_loss(i: slice) -> torch.Tensor:
        p, t = pred[i], target[i]
        return 1 - 2 * (p * t).sum() / (p.sum() + t.sum())

    assert per_image_loss(dice_loss, 2) == pytest.approx([0.0, 1.0])


def test_each_class_has_its_own_one_vs_rest_auc() -> None:
    """Hand-computed, labels x, x, y, y: class x's scores (0.8, 0.7 | 0.2, 0.1) rank both
    x images first (AUC 1); class y's (0.1, 0.2 | 0.1, 0.3) win 2.5 of the 4 pairs (a
    tie counts a half: AUC 0.625); class z has no image and no AUC."""
    probs = np.array([[0.8, 0.1, 0.1], [0.7, 0.2, 0.1], [0.2, 0.1, 0.7], [0.1, 0.3, 0.6]])
    m = multiclass_metrics(probs, np.array([0, 0, 1, 1]), ("x", "y", "z"))
    assert m["auc_per_class"] == {"x": 1.0, "y": 0.625}


def test_a_diverged_models_nan_scores_have_no_per_class_auc_and_raise_nothing() -> None:
    """NaN probabilities (a learning rate far too high): the metrics are still computed,
    with no AUC, so the health monitor gets to name the cause."""
    probs = np.full((4, 3), np.nan)
    m = multiclass_metrics(probs, np.array([0, 0, 1, 1]), ("x", "y", "z"))
    assert m["auc_per_class"] == {} and np.isnan(m["auc_macro"])


def test_two_classes_have_a_macro_auc() -> None:
    """A binary grader is one ranking: hand-computed, labels 0, 0, 1, 1 with class-1
    probabilities 0.1, 0.5 | 0.7, 0.4 win 3 of the 4 (positive, negative) pairs, AUC
    0.75. sklearn refuses a two-column score for a binary target, which left every
    two-class grader without a macro AUC (NaN), and so every rule that reads it blind
    (measured: 95/5 digits at per-class AUC 1.0 named a collapse the ranking refutes)."""
    p1 = np.array([0.1, 0.5, 0.7, 0.4])
    m = multiclass_metrics(np.stack([1 - p1, p1], axis=1), np.array([0, 0, 1, 1]), ("zero", "one"))
    assert m["auc_macro"] == pytest.approx(0.75)
    assert m["auc_per_class"] == pytest.approx({"zero": 0.75, "one": 0.75})
    # One class absent from the split: no ranking to measure.
    assert math.isnan(multiclass_metrics(np.stack([1 - p1, p1], axis=1), np.zeros(4, int), ("zero", "one"))
                      ["auc_macro"])
