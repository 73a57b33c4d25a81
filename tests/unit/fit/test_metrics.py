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
