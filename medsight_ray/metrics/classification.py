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


def multilabel_metrics(scores: np.ndarray, labels: np.ndarray, names: tuple[str, ...],
                       threshold: float = 0.5) -> dict[str, float | list | dict]:
    """AUC and AP per column and macro (defined columns only), F1 macro/micro at ``threshold``.

    Returns keys ``auc_macro``, ``map``, ``f1_macro``, ``f1_micro``, ``auc_excluded``
    (columns left out), ``auc_per_class`` and ``f1_per_class`` (name → value, NaN when
    undefined), and ``pred_positive_rate`` (N,)-mean of predictions per column.
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
    }


def multiclass_metrics(probs: np.ndarray, labels: np.ndarray, names: tuple[str, ...]) -> dict:
    """Macro/micro F1, per-class F1, accuracy, macro one-vs-rest AUC, confusion matrix
    (rows = true class), and the predicted-class histogram (share of predictions)."""
    pred = probs.argmax(1)
    classes = list(range(len(names)))
    f1_each = f1_score(labels, pred, labels=classes, average=None, zero_division=0)
    present = [c for c in classes if (labels == c).any()]
    try:
        auc = float(roc_auc_score(labels, probs, multi_class="ovr", average="macro", labels=classes))
    except ValueError:
        auc = float("nan")
    return {
        "f1_macro": float(np.mean([f1_each[c] for c in present])) if present else float("nan"),
        "f1_micro": float(f1_score(labels, pred, labels=classes, average="micro", zero_division=0)),
        "accuracy": float((pred == labels).mean()),
        "auc_macro": auc,
        "f1_per_class": dict(zip(names, (float(f) for f in f1_each))),
        "support": dict(zip(names, (int((labels == c).sum()) for c in classes))),
        "pred_histogram": dict(zip(names, (float((pred == c).mean()) for c in classes))),
        "confusion": confusion_matrix(labels, pred, labels=classes).tolist(),
    }
