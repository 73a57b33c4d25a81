"""The health rules. Each came from a seed's post-mortem; each reads measured signals.

Step rules see every optimiser step's loss and total gradient norm (before clipping).
Epoch rules see the epoch's validation metrics, which are already reduced across
workers, so every worker reaches the same verdict. A rule fires at most once per run.
The causes and remedies are the seeds' hard-won terms, corrected where measurement
proved a seed wrong (seed 001's bbox loss was not backwards).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from medsight_ray.health.config import (
    ClassCollapseConfig,
    InvertedLocalisationConfig,
    LossFallsMetricFlatConfig,
    NotLearningConfig,
    PredictionCollapseConfig,
    RuleConfig,
)

Finding = tuple[dict[str, Any], str]  # (evidence, threshold in words)

KNOWLEDGE: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {
    "non_finite": (
        ("learning rate far too high", "fp16 overflow without loss scaling", "log(0) or division by zero in a loss"),
        ("lower the learning rate 10x", "keep gradient clipping at max_norm 1.0",
         "run 'python -m medsight_ray.data check --data URI' for NaN/invalid labels")),
    "exploding_gradients": (
        ("learning rate too high for the batch size", "no warmup"),
        ("lower the learning rate 10x", "keep gradient clipping at max_norm 1.0",
         "use a warmup (optim.scheduler=cosine)")),
    "vanishing_gradients": (
        ("learning rates 100x too low (seed 001: backbone 1e-6, head 2e-5)", "every trained part frozen or saturated"),
        ("raise the backbone lr 10x and the head lr 5-10x", "check which parts the stage trains")),
    "chance_metric": (
        ("learning rates 100x too low (seed 001: backbone 1e-6, head 2e-5)",
         "a learning rate so high that the outputs died (CAM logits all pushed negative)",
         "labels not aligned with images", "the stage trains nothing that can change its output"),
        ("raise the backbone lr 10x and the head lr 5x (seed 001's fix, which the seeds' bbox-loss 'fix' was not)",
         "if the outputs died, lower the learning rate 10x",
         "check label alignment with 'python -m medsight_ray.data check --data URI'")),
    "unmixed_batches": (
        ("rows stored grouped by label (one class folder after another): the local shuffle buffer "
         "cannot mix them, so each batch holds one or two classes",),
        ("write the training rows in random order (python -m medsight_ray.data import does; "
         "'python -m medsight_ray.data check --data URI' warns of the order)",
         "raise fit.shuffle_buffer above the longest run of one label")),
    "diverging_loss": (
        ("a learning rate too high for this data and batch size",
         "batches of one or two classes (rows stored grouped by label; 'python -m medsight_ray.data check' "
         "warns), so each step pulls the model toward another class",
         "no warmup"),
        ("lower the learning rate 10x", "warm up (optim.scheduler=cosine with optim.warmup_fraction=0.1)",
         "write the training rows in random order (the importers do)")),
    "not_learning": (
        ("learning rates 100x too low (seed 001: backbone 1e-6, head 2e-5)",
         "the trained parts cannot change the output"),
        ("raise the backbone lr 10x and the head lr 5-10x (seed 001's fix)", "check which parts the stage trains")),
    "loss_falls_metric_flat": (
        ("the loss optimises something other than the metric (e.g. the localisation term dominates)",
         "labels not aligned with images"),
        ("rebalance loss.alpha/loss.beta",
         "check label alignment with 'python -m medsight_ray.data check --data URI'")),
    "class_collapse": (
        ("focal loss on top of heavy class weights starves the majority classes (seed 003)",
         "minority oversampled in every batch", "MixUp on tiny batches"),
        ("drop focal loss: use CE with label smoothing 0.05", "clamp class weights to [0.75, 1.5]",
         "disable MixUp (mixup_prob=0)", "sample the minority 1 batch in 3 (class fraction 0.33)",
         "use batch size >= 16")),
    "prediction_collapse": (
        ("BCE alone on mostly empty masks: predicting nothing is cheap (seed 004)",
         "rows without annotation given empty masks"),
        ("add Dice to BCE (e.g. 0.4 BCE + 0.4 Dice + 0.2 focal)",
         "mark unannotated rows has_segmentation=false instead of empty masks")),
    "prototype_collapse": (
        ("contrastive temperature too low (seed 001: tau 0.1)", "prototype lr too high", "identical initialisation"),
        ("raise tau toward 0.5", "lower the prototype lr", "check stage 1's CAMs localise (energy_ratio > 1)")),
    "inverted_localisation": (
        ("a localisation loss that rewards CAM outside the boxes (a truly flipped sign)",
         "a learning rate far too high (the demo's lr 1.0 trial ends here)",
         "boxes not moved with flipped images", "x and y swapped in the boxes"),
        ("check the loss with the gradient-direction test (a step must raise the CAM inside the box)",
         "lower the learning rate 10x",
         "check box normalisation and augmentation with 'python -m medsight_ray.data check --data URI'")),
}


@dataclass
class StepState:
    """Streaks of the step rules."""

    steps: int = 0
    explode_streak: int = 0
    vanish_streak: int = 0


def non_finite(cfg: RuleConfig, state: StepState, loss: float, grad_norm: float) -> Finding | None:
    """Loss or gradient norm is NaN or infinite."""
    if math.isfinite(loss) and math.isfinite(grad_norm):
        return None
    return {"loss": loss, "grad_norm": grad_norm}, "loss and gradient norm must be finite"


def exploding_gradients(cfg: RuleConfig, state: StepState, loss: float, grad_norm: float) -> Finding | None:
    """Total gradient norm above the threshold for ``patience`` consecutive steps."""
    state.explode_streak = state.explode_streak + 1 if grad_norm > cfg.threshold else 0
    if state.steps > cfg.grace and state.explode_streak >= cfg.patience:
        return {"grad_norm": grad_norm, "steps_above": state.explode_streak}, f"grad norm > {cfg.threshold:g}"
    return None


def vanishing_gradients(cfg: RuleConfig, state: StepState, loss: float, grad_norm: float) -> Finding | None:
    """Total gradient norm below the threshold for ``patience`` consecutive steps."""
    state.vanish_streak = state.vanish_streak + 1 if grad_norm < cfg.threshold else 0
    if state.steps > cfg.grace and state.vanish_streak >= cfg.patience:
        return {"grad_norm": grad_norm, "steps_below": state.vanish_streak}, f"grad norm < {cfg.threshold:g}"
    return None


def _auc(metrics: dict[str, Any]) -> float | None:
    value = metrics.get("auc_macro")
    return float(value) if isinstance(value, (int, float)) and math.isfinite(value) else None


def chance_metric(cfg: RuleConfig, history: list[dict[str, Any]]) -> Finding | None:
    """Validation AUC within 0.5 ± threshold."""
    auc = _auc(history[-1]["metrics"])
    if auc is None or abs(auc - 0.5) > cfg.threshold:
        return None
    return {"auc_macro": auc}, f"AUC within 0.5 ± {cfg.threshold:g}"


def _train_losses(history: list[dict[str, Any]]) -> list[float]:
    values = [h["train"].get("train/loss") for h in history]
    return [float(v) for v in values if isinstance(v, (int, float)) and math.isfinite(v)]


def unmixed_batches(cfg: RuleConfig, history: list[dict[str, Any]]) -> Finding | None:
    """The training batches hold fewer classes than the split: their mean label entropy
    is below ``threshold`` × the split's (``train/label_mix``, from the fit loop)."""
    mix = history[-1]["train"].get("train/label_mix")
    if isinstance(mix, float) and math.isfinite(mix) and mix < cfg.threshold:
        return {"label_mix": mix}, f"batch label entropy < {cfg.threshold:g} x the split's"
    return None


def diverging_loss(cfg: RuleConfig, history: list[dict[str, Any]]) -> Finding | None:
    """The epoch's training loss rose more than ``threshold`` (relative) above the lowest
    epoch loss so far: the optimiser is climbing, not descending. Its cure is a lower
    learning rate, never a higher one."""
    losses = _train_losses(history)
    if len(losses) < 2 or len(losses) != len(history):
        return None
    lowest, last = min(losses[:-1]), losses[-1]
    if lowest > 0 and (last - lowest) / lowest > cfg.threshold:
        return ({"train_loss_first": losses[0], "train_loss_lowest": lowest, "train_loss": last,
                 "rise": (last - lowest) / lowest},
                f"train loss > {1 + cfg.threshold:g} x its lowest epoch so far")
    return None


def not_learning(cfg: NotLearningConfig, history: list[dict[str, Any]]) -> Finding | None:
    """Since the first epoch the training loss stayed flat (moved by less than
    ``threshold``, relative, either way) and the primary metric (``objective``) rose by
    less than ``metric_gain``: the run is stalled. A loss that rose is divergence, not a stall
    (:func:`diverging_loss`), and its cure is the opposite."""
    first, last = history[0]["train"].get("train/loss"), history[-1]["train"].get("train/loss")
    gain = history[-1].get("objective", math.nan) - history[0].get("objective", math.nan)
    if first is None or last is None or not first > 0 or len(history) < 2 or not math.isfinite(gain):
        return None
    drop = (first - last) / first
    if -cfg.threshold < drop < cfg.threshold and gain < cfg.metric_gain:
        return ({"loss_drop": drop, "metric_gain": gain},
                f"train loss within ±{100 * cfg.threshold:g}% and metric up < {cfg.metric_gain:g} since epoch 1")
    return None


def loss_falls_metric_flat(cfg: LossFallsMetricFlatConfig, history: list[dict[str, Any]]) -> Finding | None:
    """Training loss fell by more than ``threshold`` (relative) while AUC stayed at chance."""
    auc = _auc(history[-1]["metrics"])
    first, last = history[0]["train"].get("train/loss"), history[-1]["train"].get("train/loss")
    if auc is None or first is None or last is None or not first > 0 or len(history) < 2:
        return None
    drop = (first - last) / first
    if drop > cfg.threshold and abs(auc - 0.5) <= cfg.auc_band:
        return ({"loss_drop": drop, "auc_macro": auc},
                f"train loss down > {100 * cfg.threshold:g}% with AUC within 0.5 ± {cfg.auc_band:g}")
    return None


def class_collapse(cfg: ClassCollapseConfig, history: list[dict[str, Any]]) -> Finding | None:
    """One class predicted for a share ≥ threshold of the samples, or (with more than two
    classes) ``dead_classes`` classes with support that no prediction hits (F1 = 0);
    multi-label: one label set for ≥ threshold. One dead class is how a healthy run looks
    for a few epochs while it learns a 13 % minority class (measured: the default grading
    recipe at epoch 4, F1 0.91 by epoch 8); seed 003's collapse had two."""
    m = history[-1]["metrics"]
    hist, f1, support = m.get("pred_histogram"), m.get("f1_per_class"), m.get("support")
    if isinstance(hist, dict) and hist:
        top_class, share = max(hist.items(), key=lambda kv: kv[1])
        dead = [c for c, n in (support or {}).items() if n > 0 and (f1 or {}).get(c, 1.0) == 0.0]
        needed = cfg.dead_classes if len(support or {}) > 2 else 1
        if share >= cfg.threshold or len(dead) >= needed:
            return ({"top_class": top_class, "top_share": share, "classes_with_f1_0": dead},
                    f"one class >= {cfg.threshold:g} of predictions, or F1 = 0 for {needed} classes with support")
    share = m.get("top_prediction_share")
    if isinstance(share, float) and share >= cfg.threshold:
        return {"top_prediction_share": share}, f"one label set >= {cfg.threshold:g} of predictions"
    return None


def prediction_collapse(cfg: PredictionCollapseConfig, history: list[dict[str, Any]]) -> Finding | None:
    """Seed 004's signature: segmentation predicts (almost) nothing where the truth has
    foreground (predicted share below ``threshold`` and below ``target_fraction`` of the
    true share) while the training loss is already below ``collapsed_loss`` (seed 004:
    loss -> 0). A model that simply has not learned yet still has a high loss and stays
    quiet."""
    m = history[-1]["metrics"]
    pred, target = m.get("pred_mean"), m.get("target_mean")
    loss = history[-1]["train"].get("train/loss")
    if not isinstance(pred, float) or not isinstance(target, float) or not isinstance(loss, float):
        return None
    if target > 0 and pred < min(cfg.threshold, cfg.target_fraction * target) and loss < cfg.collapsed_loss:
        return {"pred_mean": pred, "target_mean": target, "dice": m.get("dice"), "train_loss": loss}, \
            (f"pred_mean < {cfg.threshold:g} and < {cfg.target_fraction:g} x target_mean with train loss "
             f"< {cfg.collapsed_loss:g}")
    return None


def prototype_collapse(cfg: RuleConfig, history: list[dict[str, Any]]) -> Finding | None:
    """Mean pairwise cosine of the prototypes (all, or within a concept) above the threshold."""
    m = history[-1]["metrics"]
    values = {k: m[k] for k in ("prototype_similarity", "within_similarity")
              if isinstance(m.get(k), float) and math.isfinite(m[k])}
    if values and max(values.values()) > cfg.threshold:
        return values, f"mean pairwise cosine > {cfg.threshold:g}"
    return None


def inverted_localisation(cfg: InvertedLocalisationConfig, history: list[dict[str, Any]]) -> Finding | None:
    """CAM energy inside the boxes not above the energy outside."""
    m = history[-1]["metrics"]
    ratio, outside = m.get("energy_ratio"), m.get("energy_outside")
    # A dead CAM (near 0 everywhere) is not inverted: it is left to the chance rule.
    alive = isinstance(outside, float) and outside >= cfg.alive_energy
    if isinstance(ratio, float) and math.isfinite(ratio) and ratio <= cfg.threshold and alive:
        return ({"energy_ratio": ratio, "energy_inside": m.get("energy_inside"),
                 "energy_outside": m.get("energy_outside")}, f"inside/outside CAM energy <= {cfg.threshold:g}")
    return None


STEP_RULES: dict[str, Callable[..., Finding | None]] = {
    "non_finite": non_finite, "exploding_gradients": exploding_gradients, "vanishing_gradients": vanishing_gradients,
}
EPOCH_RULES: dict[str, Callable[..., Finding | None]] = {
    "chance_metric": chance_metric, "unmixed_batches": unmixed_batches, "diverging_loss": diverging_loss,
    "not_learning": not_learning,
    "loss_falls_metric_flat": loss_falls_metric_flat,
    "class_collapse": class_collapse, "prediction_collapse": prediction_collapse,
    "prototype_collapse": prototype_collapse, "inverted_localisation": inverted_localisation,
}
