"""Classification metrics: ROC-AUC, average precision, F1, confusion matrix.

Multi-label (concepts, diseases): scores (N, K) probabilities, labels (N, K) in {0, 1}.
A column with a single label value in the split has no defined AUC or AP: it gets NaN
and is left out of the macro, and ``auc_excluded`` says how many were left out. Such
a column is never reported as 0.5 or 1.0. Higher is better for every metric here.
"""

from __future__ import annotations

import math
import warnings

import numpy as np
from sklearn.metrics import average_precision_score, confusion_matrix, f1_score, roc_auc_score


def _nanmean(values: list[float]) -> float:
    finite = [v for v in values if not math.isnan(v)]
    return float(np.mean(finite)) if finite else float("nan")


def score_spread(scores: np.ndarray) -> float:
    """How much the model's output depends on the image: the standard deviation across
    images of each output's probability, (N, K) → the largest over the K outputs
    (probability units, 0 to 0.5). 0 means every image gets the same answer from every
    output (dead or constant outputs); higher is livelier, not better. NaN with fewer
    than two images."""
    if scores.ndim != 2 or scores.shape[0] < 2:
        return float("nan")
    return float(scores.std(axis=0).max())


def chance_auc_se(labels: np.ndarray) -> float:
    """Standard error of a macro ROC-AUC at chance (Hanley & McNeil 1982: for one column
    with n1 positives and n0 negatives, SE² = (n1 + n0 + 1) / (12·n1·n0)), over the
    columns with both labels: (N, K) one-hot or multi-hot labels → a float (AUC units).
    How far from 0.5 a skill-less model's AUC wanders on this split; NaN if no column
    has both labels."""
    n1 = labels.sum(0).astype(float)
    n0 = labels.shape[0] - n1
    defined = (n1 > 0) & (n0 > 0)
    if not defined.any():
        return float("nan")
    var = (n1[defined] + n0[defined] + 1) / (12 * n1[defined] * n0[defined])
    return float(np.sqrt(var.sum()) / defined.sum())


def constant_f1_macro(labels: np.ndarray, classes: int) -> float:
    """Macro F1 (over the classes present) of the best constant predictor: every image
    called the class c that maximises F1_c = 2·p_c / (1 + p_c), p_c its share; the other
    classes score 0. The chance level of a multi-class F1: (N,) labels → a float."""
    shares = np.bincount(labels.astype(int), minlength=classes) / max(len(labels), 1)
    present = int((shares > 0).sum())
    return float((2 * shares / (1 + shares)).max() / present) if present else float("nan")


def multilabel_metrics(scores: np.ndarray, labels: np.ndarray, names: tuple[str, ...],
                       threshold: float = 0.5) -> dict[str, float | list | dict]:
    """AUC and AP per column and macro (defined columns only), F1 macro/micro at ``threshold``.

    Returns keys ``auc_macro``, ``map``, ``f1_macro``, ``f1_micro``, ``auc_excluded``
    (columns left out), ``auc_per_class`` and ``f1_per_class`` (name → value, NaN when
    undefined), ``pred_positive_rate`` (N,)-mean of predictions per column,
    ``score_spread`` (see :func:`score_spread`), ``chance`` (0.5, the AUC of no skill)
    and ``auc_se`` (:func:`chance_auc_se`).
    """
    aucs, aps = [], []
    for k in range(labels.shape[1]):
        y = labels[:, k]
        if y.min() == y.max():
            aucs.append(float("nan"))
            aps.append(float("nan"))
            continue
        aucs.append(float(roc_auc_score(y, scores[:, k])))
        aps.append(float(average_precision_score(y, scores[:, k])))
    pred = (scores >= threshold).astype(int)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # F1 of a column with no positives is 0 by definition
        f1_each = f1_score(labels, pred, average=None, zero_division=0)
        f1_macro = float(f1_score(labels, pred, average="macro", zero_division=0))
        f1_micro = float(f1_score(labels, pred, average="micro", zero_division=0))
    return {
        "auc_macro": _nanmean(aucs),
        "map": _nanmean(aps),
        "f1_macro": f1_macro,
        "f1_micro": f1_micro,
        "auc_excluded": int(sum(math.isnan(a) for a in aucs)),
        "auc_per_class": dict(zip(names, aucs)),
        "f1_per_class": dict(zip(names, (float(f) for f in f1_each))),
        "pred_positive_rate": dict(zip(names, (float(r) for r in pred.mean(0)))),
        "score_spread": score_spread(scores),
        "chance": 0.5,  # the AUC of a random or constant ranking
        "auc_se": chance_auc_se(labels),
    }


def multiclass_metrics(probs: np.ndarray, labels: np.ndarray, names: tuple[str, ...]) -> dict:
    """Macro/micro F1, per-class F1, accuracy, macro and per-class one-vs-rest AUC, confusion matrix
    (rows = true class), the predicted-class histogram (share of predictions), the
    score spread, ``auc_se`` (:func:`chance_auc_se`), and ``chance``: the macro F1 of
    the best constant predictor."""
    pred = probs.argmax(1)
    classes = list(range(len(names)))
    f1_each = f1_score(labels, pred, labels=classes, average=None, zero_division=0)
    present = [c for c in classes if (labels == c).any()]
    try:
        if len(classes) == 2:
            # Two classes are one ranking (sklearn refuses a two-column score for a binary
            # target): the AUC of the second class's probability, as binary AUC is read.
            both = (labels == 1).any() and (labels != 1).any()
            auc = float(roc_auc_score(labels == 1, probs[:, 1])) if both else float("nan")
        else:
            auc = float(roc_auc_score(labels, probs, multi_class="ovr", average="macro", labels=classes))
    except ValueError:
        auc = float("nan")
    auc_each = {}
    for c, name in zip(classes, names):
        positive = labels == c
        if positive.any() and (~positive).any() and np.isfinite(probs[:, c]).all():
            # Non-finite scores (a diverged model) have no ranking: no AUC, as for the macro.
            auc_each[name] = float(roc_auc_score(positive, probs[:, c]))
    return {
        "f1_macro": float(np.mean([f1_each[c] for c in present])) if present else float("nan"),
        # Each class's own one-vs-rest AUC (classes with both labels in the split): a
        # macro AUC can be high while one class is not ranked at all.
        "auc_per_class": auc_each,
        "f1_micro": float(f1_score(labels, pred, labels=classes, average="micro", zero_division=0)),
        "accuracy": float((pred == labels).mean()),
        "auc_macro": auc,
        "f1_per_class": dict(zip(names, (float(f) for f in f1_each))),
        # The worst class with support: 0 when some class is never predicted right.
        "f1_min": float(min(f1_each[c] for c in present)) if present else float("nan"),
        "support": dict(zip(names, (int((labels == c).sum()) for c in classes))),
        "pred_histogram": dict(zip(names, (float((pred == c).mean()) for c in classes))),
        "confusion": confusion_matrix(labels, pred, labels=classes).tolist(),
        "score_spread": score_spread(probs),
        "chance": constant_f1_macro(labels, len(names)),
        "auc_se": chance_auc_se(np.eye(len(names))[labels.astype(int)] if len(labels) else np.zeros((0, len(names)))),
    }
