"""The health rules. Each came from a seed's post-mortem; each reads measured signals.

Step rules see every optimiser step's loss and total gradient norm (before clipping).
Epoch rules see the epoch's validation metrics, which are already reduced across
workers, so every worker reaches the same verdict. A rule fires at most once per run.
The causes are the seeds' hard-won terms, corrected where measurement
proved a seed wrong (seed 001's bbox loss was not backwards).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from medsight_ray.health.config import (
    ChanceConfig,
    ClassCollapseConfig,
    DeadOutputsConfig,
    ExplodingConfig,
    InvertedLocalisationConfig,
    LossFallsMetricFlatConfig,
    LossScaleCollapseConfig,
    NotLearningConfig,
    OutputsIgnoreInputConfig,
    OverfittingConfig,
    OversizedUpdatesConfig,
    PredictionCollapseConfig,
    RuleConfig,
)

Finding = tuple[dict[str, Any], str]  # (evidence, threshold in words)
#: The untrained model's validation metrics (measured before the first step, with
#: ``health.baseline_eval``), or None when not measured: the run's own start, which
#: epoch rules compare with rather than with a fixed chance level.
Start = dict[str, Any] | None

#: Each rule's likely causes, in the seeds' hard-won terms (corrected where measured).
#: Its remedies are config changes: :mod:`medsight_ray.health.remedies`.
KNOWLEDGE: dict[str, tuple[str, ...]] = {
    "non_finite": (
        'learning rate far too high',
        'fp16 overflow without loss scaling',
        'log(0) or division by zero in a loss',
    ),
    "loss_scale_collapse": (
        'float16 overflow that no loss scale avoids: activations or gradients beyond 65504 (an input not '
        'normalised, a loss summed over pixels rather than averaged)',
        'a learning rate so high that the gradients overflow at any scale',
    ),
    "exploding_gradients": (
        'learning rate too high for the batch size',
        'no warmup',
    ),
    "vanishing_gradients": (
        'learning rates 100x too low (seed 001: backbone 1e-6, head 2e-5)',
        'every trained part frozen or saturated',
    ),
    "chance_metric": (
        'learning rates 100x too low (seed 001: backbone 1e-6, head 2e-5)',
        'a learning rate so high that the outputs died (CAM logits all pushed negative)',
        'labels not aligned with images',
        'the stage trains nothing that can change its output',
    ),
    "outputs_ignore_input": (
        'inputs that carry no information: every image decodes to the same pixels (a broken decode, blank or '
        'constant exports, a wrong window)',
        'a part between the input and the output that passes nothing on (a frozen layer, an input multiplied '
        'by zero)',
    ),
    "oversized_updates": (
        'a learning rate far too high: every step moves the weights by a large part of their norm, so nothing'
        ' learned persists (outputs saturate; eval-mode outputs often go constant)',
    ),
    "dead_outputs": (
        'a learning rate far too high: the outputs saturated (every image gets the same answer, the CAMs are '
        'dark everywhere)',
        'labels not aligned with images (an AUC far below 0.5 ranks the classes backwards)',
    ),
    "overfitting": (
        'a training set too small for the model',
        'more epochs than the data supports',
    ),
    "unmixed_batches": (
        'rows stored grouped by label (one class folder after another): the local shuffle buffer cannot mix '
        'them, so each batch holds one or two classes',
    ),
    "diverging_loss": (
        'a learning rate too high for this data and batch size',
        "batches of one or two classes (rows stored grouped by label; 'python -m medsight_ray.data check' "
        'warns), so each step pulls the model toward another class',
        'no warmup',
    ),
    "not_learning": (
        'learning rates 100x too low (seed 001: backbone 1e-6, head 2e-5)',
        'the trained parts cannot change the output',
    ),
    "loss_falls_metric_flat": (
        'the loss optimises something other than the metric (e.g. the localisation term dominates)',
        'a loss a trivial prediction satisfies (BCE alone on mostly empty masks, seed 004)',
        'labels not aligned with images',
    ),
    "class_collapse": (
        'focal loss on top of heavy class weights starves the majority classes (seed 003)',
        'minority oversampled in every batch',
        'MixUp on tiny batches',
    ),
    "prediction_collapse": (
        'BCE alone on mostly empty masks: predicting nothing is cheap (seed 004)',
        'rows without annotation given empty masks',
    ),
    "prototype_collapse": (
        'contrastive temperature too low (seed 001: tau 0.1)',
        'prototype lr too high',
        'identical initialisation',
    ),
    "inverted_localisation": (
        'a localisation loss that rewards CAM outside the boxes (a truly flipped sign)',
        "a learning rate far too high (the demo's lr 1.0 trial ends here)",
        'boxes not moved with flipped images',
        'x and y swapped in the boxes',
    ),
}


@dataclass
class StepState:
    """Streaks of the step rules, and the run's first gradient norms (its own scale)."""

    steps: int = 0
    #: Steps GradScaler skipped in this run, and how many in a row up to now.
    skipped: int = 0
    skip_streak: int = 0
    explode_streak: int = 0
    vanish_streak: int = 0
    early_norms: list[float] = field(default_factory=list)


def non_finite(cfg: RuleConfig, state: StepState, loss: float, grad_norm: float) -> Finding | None:
    """Loss or gradient norm is NaN or infinite."""
    if math.isfinite(loss) and math.isfinite(grad_norm):
        return None
    return {"loss": loss, "grad_norm": grad_norm}, "loss and gradient norm must be finite"


def loss_scale_collapse(cfg: LossScaleCollapseConfig, state: StepState, scale: float) -> Finding | None:
    """After a step GradScaler skipped: its loss scale below ``threshold``, or
    ``patience`` skipped steps in a row."""
    if scale >= cfg.threshold and state.skip_streak < cfg.patience:
        return None
    return ({"loss_scale": scale, "skipped_in_a_row": state.skip_streak, "skipped": state.skipped},
            f"loss scale >= {cfg.threshold:g} and fewer than {cfg.patience} skipped steps in a row")


def exploding_gradients(cfg: ExplodingConfig, state: StepState, loss: float, grad_norm: float) -> Finding | None:
    """Total gradient norm above ``threshold`` and above ``growth`` × the run's own
    starting scale (the smallest norm of its first ``baseline_steps`` steps: the smallest,
    so that a learning rate that blows up at step 2 does not raise its own bar) for
    ``patience`` consecutive steps. A loss whose gradients are large from the first step
    (a contrastive loss at a low temperature, heavy class weights) has not exploded;
    gradients that grow by orders of magnitude have."""
    if math.isfinite(grad_norm) and len(state.early_norms) < cfg.baseline_steps:
        state.early_norms.append(grad_norm)
    baseline = min(state.early_norms) if state.early_norms else 0.0
    above = grad_norm > cfg.threshold and grad_norm > cfg.growth * baseline
    state.explode_streak = state.explode_streak + 1 if above else 0
    if state.steps > cfg.grace and state.explode_streak >= cfg.patience:
        return ({"grad_norm": grad_norm, "starting_norm": baseline, "steps_above": state.explode_streak},
                f"grad norm > {cfg.threshold:g} and > {cfg.growth:g} x its starting norm")
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


def _finite(value: Any) -> float | None:
    return float(value) if isinstance(value, (int, float)) and math.isfinite(value) else None


def skill(entry: dict[str, Any]) -> float | None:
    """The primary metric's skill in one history entry: (metric − chance) / (1 − chance),
    where the stage reports ``chance`` (the metric of a skill-less model on this split).
    0 at chance, 1 perfect, negative below chance; None when either is unknown."""
    metric, chance = _finite(entry.get("objective")), _finite(entry["metrics"].get("chance"))
    if metric is None or chance is None or chance >= 1:
        return None
    return (metric - chance) / (1 - chance)


def start_skill(start: Start) -> float | None:
    """The untrained model's skill (:func:`skill`) from its measured ``start`` (which
    holds its primary metric as ``objective``), or None when not measured."""
    if not start:
        return None
    return skill({"objective": start.get("objective"), "metrics": start})


def oversized_updates(cfg: OversizedUpdatesConfig, history: list[dict[str, Any]],
                      start: Start = None) -> Finding | None:
    """The epoch's weight change per optimiser step (``train/update_ratio``: distance
    moved over the weights' norm, per step) above ``threshold``: the learning rate
    overwrites the weights rather than adjusting them."""
    ratio = _finite(history[-1]["train"].get("train/update_ratio"))
    if ratio is not None and ratio > cfg.threshold:
        return {"update_ratio": ratio}, f"each step moves the weights by > {cfg.threshold:g} of their norm"
    return None


def outputs_ignore_input(cfg: OutputsIgnoreInputConfig, history: list[dict[str, Any]],
                         start: Start = None) -> Finding | None:
    """The model's answer cannot depend on the image: the validation images are the same
    pixels (their spread, ``input_spread``, below ``threshold``: a broken decode, blank
    exports), or the outputs were identical across images (``score_spread`` below
    ``output_spread``) already in the untrained model and still are. An untrained
    network's outputs vary with its input (measured at step 0: 0.004-0.09 on synthetic
    and real images, outputs identical only for identical inputs), so outputs constant
    before any step were not killed by training: no learning rate is the cause, and
    every rule that reads the outputs (a metric at chance, one class predicted, dead
    outputs) would name one."""
    m = history[-1]["metrics"]
    spread = _finite(m.get("input_spread"))
    if spread is not None and spread < cfg.threshold:
        return ({"input_spread": spread},
                f"the validation images differ by < {cfg.threshold:g} of their magnitude")
    now, then = _finite(m.get("score_spread")), _finite((start or {}).get("score_spread"))
    if now is not None and then is not None and max(now, then) < cfg.output_spread:
        return ({"score_spread": now, "start_score_spread": then},
                f"every output's probability varied by < {cfg.output_spread:g} across images before training "
                f"and still does")
    return None


def dead_outputs(cfg: DeadOutputsConfig, history: list[dict[str, Any]],
                 start: Start = None) -> Finding | None:
    """Training killed the outputs: constant across images (``score_spread`` below
    ``threshold``, in validation and in training alike) where the untrained model's
    varied, CAMs dark inside and outside the boxes (and the training outputs constant),
    or a ranking that training turned backwards: an AUC below 0.5 and more than
    ``inverted_se`` of its chance-level standard errors below the untrained model's own
    AUC (``start``). An untrained network is not a random permutation of the labels: it
    ranks the images by whatever its random features pick up, so its AUC may sit far
    from 0.5 (measured: 0.42 on real digits, 4 standard errors below 0.5); only a fall
    from its own start is evidence of an inversion, and without a measured start the
    ranking is not judged. Nor is it when the weights barely moved (largest
    ``train/update_ratio`` below ``min_update``): a ranking training did not touch was
    not inverted by training (eval-mode BatchNorm statistics alone moved the AUC of an
    lr 1e-7 run on real digits between 0.37 and 0.45). Outputs that were constant before any step are
    :func:`outputs_ignore_input`'s case, not this one."""
    m = history[-1]["metrics"]
    spread = _finite(m.get("score_spread"))
    inside, outside = _finite(m.get("energy_inside")), _finite(m.get("energy_outside"))
    auc, se = _auc(m), _finite(m.get("auc_se"))
    start = start or {}
    # Validation runs in eval mode; outputs that died are constant in train mode too.
    # Outputs alive in train mode are an eval-mode artefact (BatchNorm running statistics
    # that still hold their initial values after a few steps), and the run recovers.
    train_spread = _finite(history[-1].get("train", {}).get("train/score_spread"))
    dead_in_training = train_spread is None or train_spread < cfg.threshold
    start_spread = _finite(start.get("score_spread"))
    alive_at_start = start_spread is None or start_spread >= cfg.threshold
    if spread is not None and spread < cfg.threshold and dead_in_training and alive_at_start:
        evidence = {"score_spread": spread}
        if train_spread is not None:
            evidence["train_score_spread"] = train_spread
        if start_spread is not None:
            evidence["start_score_spread"] = start_spread
        return evidence, f"every output's probability varies by < {cfg.threshold:g} across images"
    if (inside is not None and outside is not None and max(inside, outside) < cfg.alive_energy
            and dead_in_training):
        return ({"energy_inside": inside, "energy_outside": outside},
                f"CAM energy < {cfg.alive_energy:g} inside and outside the boxes")
    start_auc = _auc(start)
    ratios = _update_ratios(history)
    trained = not ratios or max(ratios) >= cfg.min_update
    if auc is not None and se is not None and start_auc is not None and auc < 0.5 and trained \
            and auc < start_auc - cfg.inverted_se * se:
        return ({"auc_macro": auc, "start_auc": start_auc, "auc_se": se},
                f"AUC < 0.5 and > {cfg.inverted_se:g} x its chance-level standard error ({se:.3f}) below the "
                f"untrained model's {start_auc:.3f}")
    return None


def _best_skill(history: list[dict[str, Any]]) -> float | None:
    values = [v for v in (skill(h) for h in history) if v is not None]
    return max(values) if values else None


def chance_metric(cfg: ChanceConfig, history: list[dict[str, Any]],
                  start: Start = None) -> Finding | None:
    """The primary metric's skill (:func:`skill`) at or below ``threshold`` in every epoch
    so far: no better than a model that ignores the image (AUC 0.5 for AUC stages, the
    best constant class's F1 for grading, the better trivial mask's Dice for
    segmentation). A run that once had skill and dipped is not stuck at chance, nor is one
    whose ranking is learned (:func:`_ranked`). Where a macro AUC and its chance-level
    standard error are reported, a ranking within ``ranking_se`` of those errors of 0.5
    in every epoch so far is at chance whatever a thresholded primary metric says: labels
    drawn at random in the true shares beat the constant predictor's F1, so an F1 above
    it is no skill while the ranking is at chance."""
    value, best = skill(history[-1]), _best_skill(history)
    if value is None or best is None:
        return None
    evidence = {"metric": history[-1]["objective"], "chance": history[-1]["metrics"]["chance"], "skill": value}
    ratios = _update_ratios(history)
    if ratios:
        # What tells a learning rate too low from inputs or labels that teach nothing:
        # whether the optimiser moves the weights (the remedies read it).
        evidence["update_ratio"] = max(ratios)
    if _ranking_at_chance(cfg, history):
        m = history[-1]["metrics"]
        return ({**evidence, "auc_macro": m["auc_macro"], "auc_se": m["auc_se"]},
                f"macro AUC within {cfg.ranking_se:g} x its chance-level standard error of 0.5 in every epoch")
    if best > cfg.threshold or _rising(history, cfg.min_rise) or _ranked(history[-1]["metrics"], cfg.ranked_auc):
        return None
    return (evidence, f"skill (metric - chance) / (1 - chance) <= {cfg.threshold:g}, "
                      f"up < {cfg.min_rise:g} in the last epoch")


def _ranking_at_chance(cfg: ChanceConfig, history: list[dict[str, Any]]) -> bool:
    """Every epoch so far reports a macro AUC within ``ranking_se`` × its chance-level
    standard error (``auc_se``) of 0.5."""
    for h in history:
        auc, se = _auc(h["metrics"]), _finite(h["metrics"].get("auc_se"))
        if auc is None or se is None or abs(auc - 0.5) > cfg.ranking_se * se:
            return False
    return True


def _rising(history: list[dict[str, Any]], min_rise: float) -> bool:
    """The primary metric rose by at least ``min_rise`` over the last epoch: a slow
    starter still climbing out of chance, not a run stuck there."""
    if len(history) < 2:
        return False
    last, before = _finite(history[-1].get("objective")), _finite(history[-2].get("objective"))
    return last is not None and before is not None and last - before >= min_rise


def _ranked(metrics: dict[str, Any], ranked_auc: float) -> bool:
    """One epoch's ``metrics`` rank the images by class (macro AUC at least
    ``ranked_auc``, where the stage reports one beside a thresholded primary metric such
    as grading's F1): the model has learned, and a thresholded metric at chance is its
    output biases leaning onto one class, which ``class_collapse`` judges (measured: a
    focal, class-weighted, balanced-sampling grading trial called every image its worst
    class for 3 epochs, F1 0.07 below the constant predictor's 0.15, at AUC 0.68, 0.91,
    0.98, then reached F1 0.73 by epoch 5; the stuck trials of the same sweeps stayed at
    AUC 0.49-0.64)."""
    auc = _auc(metrics)
    return auc is not None and auc >= ranked_auc


def _train_losses(history: list[dict[str, Any]]) -> list[float]:
    values = [h["train"].get("train/loss") for h in history]
    return [float(v) for v in values if isinstance(v, (int, float)) and math.isfinite(v)]


def unmixed_batches(cfg: RuleConfig, history: list[dict[str, Any]],
                    start: Start = None) -> Finding | None:
    """The training batches hold fewer classes than a shuffled split would give: their
    mean label entropy is below ``threshold`` × that of random batches of the same size
    (``train/label_mix``, from the fit loop; a batch of 2 is not expected to hold 4 classes)."""
    mix = history[-1]["train"].get("train/label_mix")
    if isinstance(mix, float) and math.isfinite(mix) and mix < cfg.threshold:
        # How much the loss swings between batches backs it up: batches of one class
        # pull the model one way after another.
        return ({"label_mix": mix, "loss_swing": history[-1]["train"].get("train/loss_swing")},
                f"batch label entropy < {cfg.threshold:g} x the split's")
    return None


def diverging_loss(cfg: RuleConfig, history: list[dict[str, Any]],
                   start: Start = None) -> Finding | None:
    """The epoch's training loss climbed back above its lowest epoch so far by more than
    ``threshold`` of the first epoch's loss, and the primary metric set no new best:
    the optimiser is climbing, not descending. Its cure is a lower learning rate, never
    a higher one."""
    losses = _train_losses(history)
    if len(losses) < 2 or len(losses) != len(history):
        return None
    first, lowest, last = losses[0], min(losses[:-1]), losses[-1]
    # A training loss that rises while validation improves is noise in the loss (MixUp
    # mixes a random share of batches), not divergence. Improving means a new best: a
    # metric that only ties its best (a model stuck on one class repeats its F1 exactly)
    # is no sign of health.
    improving = _new_best(history)
    # The rise is scaled by the loss at the start, the scale of the run's own descent:
    # scaled by the lowest loss, a memorised train set's 0.07 -> 0.17 would be a 140 %
    # "divergence" (measured: an overfitting run, lr decayed to nearly 0).
    rise = (last - lowest) / first if first > 0 else 0.0
    if rise > cfg.threshold and not improving:
        return ({"train_loss_first": first, "train_loss_lowest": lowest, "train_loss": last,
                 "rise": rise, "loss_swing": history[-1]["train"].get("train/loss_swing")},
                f"train loss climbed back > {cfg.threshold:g} x its first epoch's above its lowest epoch")
    return None


def _update_ratios(history: list[dict[str, Any]]) -> list[float]:
    """Each epoch's weight change per optimiser step, where measured."""
    return [r for r in (_finite(h["train"].get("train/update_ratio")) for h in history) if r is not None]


def not_learning(cfg: NotLearningConfig, history: list[dict[str, Any]],
                 start: Start = None) -> Finding | None:
    """Since the first epoch the training loss stayed flat (moved by less than
    ``threshold``, relative, either way), the primary metric (``objective``) rose by
    less than ``metric_gain``, and the optimiser barely moved the weights (largest
    ``train/update_ratio`` below ``max_update``, where measured): the run is stalled.
    A loss that rose is divergence, not a stall (:func:`diverging_loss`), and its cure
    is the opposite. A model fine-tuned from a pretrained backbone that had skill before
    its first step (above ``start_skill``, measured) is not stalled when it stays where
    it started: it already knows the task, and a higher learning rate would wash out
    what it knows. The skill alone does not say so: random features rank easy data too
    (measured: seed 001's stage 1 at AUC 0.67 from a random start, stalled)."""
    first, last = history[0]["train"].get("train/loss"), history[-1]["train"].get("train/loss")
    gain = history[-1].get("objective", math.nan) - history[0].get("objective", math.nan)
    if first is None or last is None or not first > 0 or len(history) < 2 or not math.isfinite(gain):
        return None
    began = start_skill(start)
    if began is not None and began > cfg.start_skill and (start or {}).get("pretrained"):
        return None
    drop = (first - last) / first
    # The remedy is a higher learning rate, so the weights must barely move: a flat run
    # whose optimiser moves them is slow (or fails for another reason), not stalled.
    ratios = _update_ratios(history)
    moving = bool(ratios) and max(ratios) >= cfg.max_update
    if -cfg.threshold < drop < cfg.threshold and gain < cfg.metric_gain and not moving:
        evidence = {"loss_drop": drop, "metric_gain": gain}
        if ratios:
            evidence["update_ratio"] = max(ratios)
        return (evidence, f"train loss within ±{100 * cfg.threshold:g}% and metric up < {cfg.metric_gain:g} "
                          f"since epoch 1" + (f", weights moved < {cfg.max_update:g} a step" if ratios else ""))
    return None


def loss_falls_metric_flat(cfg: LossFallsMetricFlatConfig, history: list[dict[str, Any]],
                           start: Start = None) -> Finding | None:
    """Training loss fell by more than ``threshold`` (relative) while the primary metric's
    skill stayed within ``skill_band`` of chance in every epoch: the loss optimises
    something else. (One epoch's dip to chance in a run that had skill is noise, and a
    model whose ranking is learned, :func:`_ranked`, has learned what the loss teaches.)"""
    value = _best_skill(history)
    first, last = history[0]["train"].get("train/loss"), history[-1]["train"].get("train/loss")
    if value is None or first is None or last is None or not first > 0 or len(history) < 2:
        return None
    drop = (first - last) / first
    if (drop > cfg.threshold and value <= cfg.skill_band and not _rising(history, cfg.min_rise)
            and not _ranked(history[-1]["metrics"], cfg.ranked_auc)):
        return ({"loss_drop": drop, "metric": history[-1]["objective"], "skill": value},
                f"train loss down > {100 * cfg.threshold:g}% with skill <= {cfg.skill_band:g}")
    return None


def overfitting(cfg: OverfittingConfig, history: list[dict[str, Any]],
                start: Start = None) -> Finding | None:
    """The validation side moving away from the train side, beyond noise: the validation
    loss climbed in each of the last ``rising_epochs`` epochs from its lowest earlier
    epoch and now stands more than ``threshold`` (relative) and more than ``noise_se``
    standard errors of the difference (from each epoch's ``loss_se``, where reported)
    above it; meanwhile the training set went on being fitted (the train loss's excess
    over its floor, ``train/loss_floor``: the loss of predicting the training targets
    exactly, fell below ``train_fraction`` of its excess at that lowest epoch), and the
    primary metric fell at least ``metric_drop`` below its best (more on a split whose
    rarest class is a handful of images: :func:`_metric_noise`). Measured on the excess,
    the rule reads the same under label smoothing or MixUp, whose floor the train loss
    cannot cross (with smoothing 0.3 on 4 classes the floor is 0.78: the raw loss never
    halves). Measured on the metric, a validation loss that climbs from over-confidence
    while the metric holds (long runs without smoothing) is no harm. One epoch's spike
    that falls back is not a climb, and a model cannot overfit before it has learned:
    some epoch before the climb must have had skill above ``min_skill`` (:func:`skill`).
    A validation loss that climbs from an untrained model's is instability (eval-mode
    BatchNorm on tiny batches) or a collapse."""
    val = [_finite(h["metrics"].get("loss")) for h in history]
    train = [_finite(h["train"].get("train/loss")) for h in history]
    floor = [_finite(h["train"].get("train/loss_floor")) or 0.0 for h in history]
    objective = [_finite(h.get("objective")) for h in history]
    rising = cfg.rising_epochs
    if len(history) <= rising or None in val or None in train or None in objective:
        return None
    low = min(range(len(val) - rising), key=lambda i: val[i])
    # Skill before the climb, not at the lowest epoch: the lowest validation loss may come
    # epochs before the metric's best (measured: loss lowest at epoch 2 with skill 0.249, best
    # skill 0.52 at epoch 6, then a 30-epoch memorisation of noisy labels).
    learned = _best_skill(history[:-rising])
    if learned is None or learned <= cfg.min_skill:
        return None
    climbing = all(val[i] > val[i - 1] for i in range(len(val) - rising, len(val))) and val[-rising - 1] >= val[low]
    se_low, se = (_finite(history[i]["metrics"].get("loss_se")) or 0.0 for i in (low, -1))
    rise = val[-1] - val[low]
    noise = math.hypot(se_low, se)
    significant = rise > cfg.threshold * val[low] and rise > cfg.noise_se * noise
    excess, excess_then = train[-1] - floor[-1], train[low] - floor[low]
    fitting = excess < cfg.train_fraction * excess_then
    drop = max(objective[:-1]) - objective[-1]  # type: ignore[type-var, operator]
    if climbing and significant and fitting and drop >= _metric_noise(cfg, history[-1]["metrics"]):
        return ({"val_loss_lowest": val[low], "lowest_epoch": low + 1, "skill_before": learned, "val_loss": val[-1],
                 "rise_in_se": rise / noise if noise > 0 else math.inf, "train_loss": train[-1],
                 "train_loss_then": train[low], "train_loss_floor": floor[-1], "metric_drop": drop},
                f"validation loss up {rising} epochs running, > {1 + cfg.threshold:g} x and > {cfg.noise_se:g} "
                f"standard errors above its lowest, the train loss's excess over its floor below "
                f"{cfg.train_fraction:g} x its value then, the metric >= {cfg.metric_drop:g} below its best")
    return None


def _metric_noise(cfg: OverfittingConfig, metrics: dict[str, Any]) -> float:
    """The drop of the primary metric that counts as harm: ``metric_drop``, or more on a
    validation split whose rarest class is so small that ``rare_images`` of its images
    move a macro metric further (each image of a class of n moves that class's score by
    up to 1 / n, the macro by 1 / (classes × n)). Measured: 95/5 digits with 2 images of
    the minority in validation, F1 0.48 -> -0.28 -> 1.0 in skill between epochs as they
    flipped, a healthy run."""
    support = metrics.get("support")
    counts = [n for n in support.values() if isinstance(n, (int, float)) and n > 0] if isinstance(support, dict) \
        else []
    if not counts:
        return cfg.metric_drop
    return max(cfg.metric_drop, cfg.rare_images / (len(counts) * min(counts)))


def _starved_streak(cfg: ClassCollapseConfig, history: list[dict[str, Any]]) -> tuple[int, list[str]]:
    """Epochs running (up to the last) in which some class with support was starved, and
    the classes starved in every one of them."""
    streak, starved_all = 0, None
    for h in reversed(history):
        m = h["metrics"]
        hist, support = m.get("pred_histogram"), m.get("support")
        if not isinstance(hist, dict) or not isinstance(support, dict) or not sum(support.values()):
            break
        total = sum(support.values())
        starved = {c for c, n in support.items()
                   if n > 0 and hist.get(c, 0.0) < cfg.starved_fraction * n / total}
        starved = starved if starved_all is None else starved & starved_all
        if not starved:
            break
        streak, starved_all = streak + 1, starved
    return streak, sorted(starved_all or ())


def _concentrated(cfg: ClassCollapseConfig, metrics: dict[str, Any], start: Start = None) -> dict[str, Any] | None:
    """Evidence that one class took ``threshold`` more of the predictions than its true
    share in one epoch's metrics while the ranking is not learned (macro AUC below
    ``ranked_auc``, where reported), and more than the untrained model gave it
    (``start``, where measured), else None."""
    hist, support = metrics.get("pred_histogram"), metrics.get("support")
    if not (isinstance(hist, dict) and hist and isinstance(support, dict) and sum(support.values())):
        return None
    if _ranked(metrics, cfg.ranked_auc):
        return None  # the argmax leans, the ranking does not: a prior shift, not a collapse
    auc = _auc(metrics)
    top_class, share = max(hist.items(), key=lambda kv: kv[1])
    true_share = support.get(top_class, 0) / sum(support.values())
    before = (start or {}).get("pred_histogram")
    if isinstance(before, dict) and _finite(before.get(top_class)) is not None \
            and before[top_class] - true_share >= cfg.threshold and share <= before[top_class]:
        # The untrained model already called the images this class: training did not
        # collapse it, it has not moved it (a stall, which the stall rules judge).
        return None
    if share - true_share >= cfg.threshold:
        evidence = {"top_class": top_class, "predicted_share": share, "true_share": true_share}
        return evidence if auc is None else {**evidence, "auc_macro": auc}
    return None


def _starved_ranked(cfg: ClassCollapseConfig, metrics: dict[str, Any], starved: list[str]) -> bool:
    """The starved classes are ranked: each one's own one-vs-rest AUC (``auc_per_class``)
    at least ``ranked_auc`` (the macro AUC where the per-class one is not reported). A
    class ranked but never the argmax is a threshold that leans; a class not ranked is
    one the model cannot see (a sampler that never draws it: its own AUC stays low while
    the macro AUC, carried by the other classes, is high)."""
    per_class = metrics.get("auc_per_class")
    if isinstance(per_class, dict) and starved and all(_finite(per_class.get(c)) is not None for c in starved):
        return min(float(per_class[c]) for c in starved) >= cfg.ranked_auc
    return _ranked(metrics, cfg.ranked_auc)


def class_collapse(cfg: ClassCollapseConfig, history: list[dict[str, Any]],
                   start: Start = None) -> Finding | None:
    """Predicted class shares against the true shares (``support``): one class predicted
    ``threshold`` more than its true share, with the ranking not learned (macro AUC
    below ``ranked_auc``), in ``collapse_epochs`` of the last ``collapse_window`` epochs
    after the ``grace`` epochs, the last one included (it may be another class each
    epoch: a collapse that spreads out for an epoch and comes back is one collapse), or
    a class with support starved (predicted below ``starved_fraction`` of its true
    share) for ``starved_epochs`` epochs running, its own ranking not learned
    (:func:`_starved_ranked`: a minority never predicted at AUC 0.93 is a threshold that
    leans, not a class the model cannot see). A collapse is what training did to the
    predictions, so neither a model whose weights barely moved (largest
    ``train/update_ratio`` below ``min_update``, the scale of ``not_learning``: measured
    on real digits at lr 1e-7, 1.5e-7 a step, with every image called one class as
    BatchNorm's statistics shifted) nor one that the untrained model's calls (``start``)
    already concentrated on that class has collapsed: it stayed put, which the stall
    rules judge. The grace epochs do not count: a healthy run may call every image one
    class after its first epoch (measured: balanced 4-class grading, 100 % one class at
    epoch 1, 68 % at epoch 2 with F1 0.55; seed 003's recipe stays there, 85-100 % on a
    class holding 13-33 %). Multi-label stages are left to ``chance_metric`` and
    ``dead_outputs``: an uncalibrated model with a good ranking predicts one thresholded
    label set for most images (measured: stage 3 at epoch 2, 89 % one set, AUC 0.74 and
    rising)."""
    ratios = _update_ratios(history)
    if ratios and max(ratios) < cfg.min_update:
        return None  # the weights have not moved: the calls are the random start's
    recent = [_concentrated(cfg, h["metrics"], start) for h in history[cfg.grace:][-cfg.collapse_window:]]
    if recent and recent[-1] and sum(map(bool, recent)) >= cfg.collapse_epochs:
        return recent[-1], (f"one class predicted >= {cfg.threshold:g} above its true share, AUC < "
                            f"{cfg.ranked_auc:g}, in {cfg.collapse_epochs} of the last "
                            f"{cfg.collapse_window} epochs")
    streak, starved = _starved_streak(cfg, history)
    if streak >= cfg.starved_epochs and not _starved_ranked(cfg, history[-1]["metrics"], starved):
        m = history[-1]["metrics"]
        total = sum(m["support"].values())
        return ({"starved_classes": starved, "epochs": streak,
                 "true_shares": {c: m["support"][c] / total for c in starved},
                 "predicted_shares": {c: m["pred_histogram"].get(c, 0.0) for c in starved}},
                f"a class with support predicted < {cfg.starved_fraction:g} x its true share "
                f"for {cfg.starved_epochs} epochs")
    return None


def _new_best(history: list[dict[str, Any]]) -> bool:
    """The primary metric of the last epoch stands strictly above every earlier epoch's."""
    values = [_finite(h.get("objective")) for h in history]
    return len(values) > 1 and None not in values and values[-1] > max(values[:-1])  # type: ignore[type-var]


def prediction_collapse(cfg: PredictionCollapseConfig, history: list[dict[str, Any]],
                        start: Start = None) -> Finding | None:
    """Seed 004's signature: segmentation predicts (almost) nothing where the truth has
    foreground (predicted share below ``threshold`` × the true share) while the training
    loss fell below ``loss_fraction`` × the loss at the start (``train/loss_start``; the
    first epoch's loss when that is missing). Both are relative, so the rule holds for
    any loss mix and any foreground share. A collapse goes nowhere: an epoch whose
    predicted share grew ``growth``-fold, or whose metric set a new best, belongs to a
    model still growing its foreground out of the all-background start that BCE gives
    every segmentation net (measured on real nuclei: Dice 0.16 -> 0.25 -> 0.31 with the
    predicted share 0.026 -> 0.040 -> 0.051 of a true 0.20, a healthy run). That holds
    only while the loss still has something to teach: once it has settled below
    ``settled_fraction`` × its start, the gradient left is too small to grow the
    foreground, and a new best is the collapse's last flicker (measured, seed 004's
    recipe: loss at 0.02 of its start, Dice 0 -> 0.056 -> 0.069 with 3 % of the true
    foreground predicted, the gradient norm 15× below its first epoch's)."""
    m = history[-1]["metrics"]
    pred, target = _finite(m.get("pred_mean")), _finite(m.get("target_mean"))
    loss = _finite(history[-1]["train"].get("train/loss"))
    start = _finite(history[0]["train"].get("train/loss_start", history[0]["train"].get("train/loss")))
    if pred is None or target is None or loss is None or start is None or not target > 0 or not start > 0:
        return None
    before = _finite(history[-2]["metrics"].get("pred_mean")) if len(history) > 1 else None
    growing = before is not None and pred > cfg.growth * before
    learning = loss >= cfg.settled_fraction * start and (growing or _new_best(history))
    if pred < cfg.threshold * target and loss < cfg.loss_fraction * start and not learning:
        return ({"pred_mean": pred, "target_mean": target, "dice": m.get("dice"), "train_loss": loss,
                 "train_loss_start": start},
                f"pred_mean < {cfg.threshold:g} x target_mean with train loss < {cfg.loss_fraction:g} x its start")
    return None


def prototype_collapse(cfg: RuleConfig, history: list[dict[str, Any]],
                       start: Start = None) -> Finding | None:
    """Mean pairwise cosine of the prototypes (all, or within a concept) above the threshold."""
    m = history[-1]["metrics"]
    values = {k: m[k] for k in ("prototype_similarity", "within_similarity")
              if isinstance(m.get(k), float) and math.isfinite(m[k])}
    if values and max(values.values()) > cfg.threshold:
        return values, f"mean pairwise cosine > {cfg.threshold:g}"
    return None


def inverted_localisation(cfg: InvertedLocalisationConfig, history: list[dict[str, Any]],
                          start: Start = None) -> Finding | None:
    """CAM energy inside the boxes not above the energy outside, after training moved the
    weights. A dead CAM (near 0 everywhere) is not inverted: it is left to
    ``dead_outputs``. Nor is the CAM of a model whose weights barely moved (largest
    ``train/update_ratio`` below ``min_update``, where measured): that is its random
    initial CAM, which sits on either side of 1 by chance (measured in stalled runs:
    0.97-1.06), and the run is stalled, not inverted (``not_learning``)."""
    m = history[-1]["metrics"]
    ratio, outside = m.get("energy_ratio"), m.get("energy_outside")
    alive = isinstance(outside, float) and outside >= cfg.alive_energy
    ratios = _update_ratios(history)
    trained = not ratios or max(ratios) >= cfg.min_update
    if isinstance(ratio, float) and math.isfinite(ratio) and ratio <= cfg.threshold and alive and trained:
        return ({"energy_ratio": ratio, "energy_inside": m.get("energy_inside"),
                 "energy_outside": m.get("energy_outside")}, f"inside/outside CAM energy <= {cfg.threshold:g}")
    return None


STEP_RULES: dict[str, Callable[..., Finding | None]] = {
    "non_finite": non_finite, "exploding_gradients": exploding_gradients, "vanishing_gradients": vanishing_gradients,
}
#: Rules of the steps float16's GradScaler skipped (never seen by the step rules).
SKIPPED_STEP_RULES: dict[str, Callable[..., Finding | None]] = {"loss_scale_collapse": loss_scale_collapse}
#: Epoch rules, most specific first: when several fire in one epoch, the first names
#: the cause (a collapse onto one class is also a metric at chance, but its cure differs).
EPOCH_RULES: dict[str, Callable[..., Finding | None]] = {
    "outputs_ignore_input": outputs_ignore_input,
    "oversized_updates": oversized_updates, "dead_outputs": dead_outputs, "overfitting": overfitting,
    "class_collapse": class_collapse, "prediction_collapse": prediction_collapse,
    "prototype_collapse": prototype_collapse, "inverted_localisation": inverted_localisation,
    "unmixed_batches": unmixed_batches, "diverging_loss": diverging_loss,
    "loss_falls_metric_flat": loss_falls_metric_flat, "chance_metric": chance_metric, "not_learning": not_learning,
}
#: Every rule, by name: the step rules, the skipped-step rules, the epoch rules.
ALL_RULES: tuple[str, ...] = (*STEP_RULES, *SKIPPED_STEP_RULES, *EPOCH_RULES)
