"""Segmentation metrics from per-image confusion counts: Dice, IoU, pred/target mean.

Workers sum counts, so metrics are exact across any sharding. Images with an unknown
mask never count. Dice = 2TP / (2TP + FP + FN) and IoU = TP / (TP + FP + FN) are
computed over all pixels of the split (micro); an image set without any foreground
and without any predicted foreground scores NaN, not 1. Higher is better for Dice and
IoU; ``pred_mean`` against ``target_mean`` shows collapse to "predict nothing".
"""

from __future__ import annotations

import numpy as np


def confusion_counts(pred: np.ndarray, target: np.ndarray) -> np.ndarray:
    """Per-image (TP, FP, FN, TN): pred and target (B, ..., H, W) in {0, 1} → (B, 4) int64."""
    p = pred.reshape(pred.shape[0], -1).astype(bool)
    t = target.reshape(target.shape[0], -1).astype(bool)
    return np.stack([(p & t).sum(1), (p & ~t).sum(1), (~p & t).sum(1), (~p & ~t).sum(1)], axis=1).astype(np.int64)


def segmentation_metrics(counts: np.ndarray) -> dict[str, float]:
    """Dice, IoU (micro over pixels), per-image mean Dice over images with foreground,
    ``pred_mean`` and ``target_mean`` (shares of foreground pixels), and ``chance``
    (:func:`trivial_dice`)."""
    tp, fp, fn, tn = counts.sum(0).astype(float)
    total = max(tp + fp + fn + tn, 1.0)
    denom = 2 * tp + fp + fn
    per_image = counts[counts[:, 0] + counts[:, 2] > 0]
    img_dice = (2 * per_image[:, 0] / np.maximum(2 * per_image[:, 0] + per_image[:, 1] + per_image[:, 2], 1))
    return {
        "dice": float(2 * tp / denom) if denom else float("nan"),
        "iou": float(tp / (tp + fp + fn)) if tp + fp + fn else float("nan"),
        "dice_per_image": float(img_dice.mean()) if len(img_dice) else float("nan"),
        "pred_mean": float((tp + fp) / total),
        "target_mean": float((tp + fn) / total),
        "images": int(counts.shape[0]),
        "chance": trivial_dice((tp + fn) / total),
    }


def trivial_dice(target_mean: float) -> float:
    """Dice of the better trivial mask: nothing (Dice 0) or every pixel (2t / (1 + t),
    t the true foreground share). The chance level of Dice."""
    return float(2 * target_mean / (1 + target_mean))
