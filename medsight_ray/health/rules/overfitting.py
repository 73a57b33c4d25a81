"""The ``overfitting`` health rule: its settings, check, causes and remedies."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from medsight_ray.health.remedies import Advice, Change, Evidence, Remedy, Step, has, value_of
from medsight_ray.health.rule import Finding, Rule, RuleConfig, Start, register
from medsight_ray.health.signals import best_skill, finite


@dataclass(frozen=True)
class OverfittingConfig(RuleConfig):
    """``overfitting``: the validation loss climbs above its lowest epoch by more than its
    own noise while the training loss falls below where it stood then, and the primary
    metric is past its best: the model fits its training images at the expense of the
    rest. The noise is the standard error of the mean validation loss (``loss_se``,
    from per-image losses): on a few dozen images the loss swings between epochs by more
    than any fixed margin (measured: 0.17 -> 0.59 -> 0.19 on 81 images in a healthy run
    that went on to F1 0.94), so a rise counts only when it is ``noise_se`` standard
    errors of the difference and ``threshold`` of the loss.

    Attributes:
        threshold: rise of the validation loss over its lowest epoch so far, relative
            (0.1 = 10 % above), that an epoch needs as well.
        noise_se: rise, in standard errors of the difference between the two epochs'
            mean losses (sqrt(se_low^2 + se^2)), that an epoch needs. That standard
            error treats the two epochs as independent samples; they are the same
            images, whose per-image losses move together, so it overstates the noise
            of the difference, and 2 of it is a stricter test than it reads. Measured:
            a memorised noisy train set climbed 2.2 of them in 3 epochs (F1 0.65 ->
            0.52); no healthy recorded run climbed 2 from an epoch with skill.
        rising_epochs: consecutive epochs the validation loss must have risen, each
            above the one before (a one-epoch spike that falls back is BatchNorm or
            sampling noise on a small split).
        min_skill: skill ((metric - chance) / (1 - chance)) some epoch before the climb
            must have had: a model overfits what it has learned. Measured on 40 training
            images: the validation loss of the untrained model climbed 1.3 -> 7.7 in 4
            epochs (F1 at chance, eval-mode BatchNorm on batches of 8), then fell to 1.2
            with F1 0.69 by epoch 10.
        train_fraction: the train loss's excess over its floor (``train/loss_floor``,
            the loss of predicting the training targets exactly after label smoothing
            and MixUp; 0 where a stage does not report it) must have fallen below this
            share of its excess at the lowest epoch: overfitting is the model going on
            fitting its training images, and the excess measures that under any
            smoothing, where the raw loss has a floor it cannot halve. Measured: a
            2-epoch climb 1.02 -> 1.64 -> 1.86 on 120 validation
            images (4.8 standard errors) at train loss 0.96 -> 0.75 was the argmax
            shifting between classes (AUC steady at 0.82), and F1 went from 0.32 to
            0.69 in the next 9 epochs; the memorised runs' train loss stood at 0.03-0.2
            of its value at their lowest epoch.
        metric_drop: the primary metric must stand at least this far below its best
            earlier epoch (its units) in each epoch of the climb: overfitting costs the
            validation metric, and goes on costing it as the model goes on fitting its
            training images, while a validation loss that climbs with the metric held is
            over-confidence, which the best checkpoint does not suffer (the zoo's measure
            of the harm: F1 0.05 below its best; the memorised runs fell 0.09-0.12). A
            climb whose first epoch held the metric is a spike (measured, real digits at
            the defaults: validation loss 0.21 -> 0.23 -> 0.40 with F1 0.99 -> 0.94 ->
            0.81, then 0.12 and F1 0.98 the next epoch, 1.00 at the end).
        rare_images: images of the rarest validation class (where the stage reports
            the class counts, ``support``) whose flips a drop must exceed: each moves a
            macro metric by up to 1 / (classes × that class's count), so on a split
            with 2 images of a class a drop of 0.5 in F1 is two images, not harm.
        grace: epochs before the rule may fire.
        patience: consecutive epochs the whole condition must hold.
    """

    threshold: float = 0.1
    train_fraction: float = 0.5
    metric_drop: float = 0.05
    rare_images: float = 2.0
    noise_se: float = 2.0
    rising_epochs: int = 2
    min_skill: float = 0.25
    grace: int = 1
    patience: int = 1

    def epochs_needed(self) -> int:
        """An epoch to learn on, then ``rising_epochs`` epochs of climb."""
        return max(self.grace, self.rising_epochs) + self.patience


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


@register
class Overfitting(Rule):
    """overfitting: see :meth:`check`; its settings: :class:`OverfittingConfig`."""

    name = "overfitting"
    kind = "epoch"
    Config = OverfittingConfig
    causes = (
        'a training set too small for the model',
        'more epochs than the data supports',
    )
    fires_when = (
        'the validation loss rose in each of the last 2 epochs from its lowest earlier epoch and now stands > 1.1'
        " × and > 2 standard errors of the difference (from per-image losses) above it, while the train loss's "
        'excess over its floor (`train/loss_floor`: the loss of predicting the training targets exactly after '
        'label smoothing and MixUp, so the rule reads the same under both) fell below half its value at that '
        'epoch (the model goes on fitting its training images) and the metric stands ≥ 0.05 below its best in '
        'each epoch of the climb (a validation loss that climbs from over-confidence while the metric holds is no '
        'harm, and one whose first epoch held the metric is a spike); some epoch before '
        'the climb must have had skill ≥ 0.25 (a one-epoch spike that falls back, common on small validation '
        'splits, is not a climb)'
    )
    origin = "SageMaker Debugger's overfit rule; zoo: 80 training images with a fifth of their labels wrong"

    @staticmethod
    def check(cfg: OverfittingConfig, history: list[dict[str, Any]], start: Start = None) -> Finding | None:
        """The validation side moving away from the train side, beyond noise: the validation
        loss climbed in each of the last ``rising_epochs`` epochs from its lowest earlier
        epoch and now stands more than ``threshold`` (relative) and more than ``noise_se``
        standard errors of the difference (from each epoch's ``loss_se``, where reported)
        above it; meanwhile the training set went on being fitted (the train loss's excess
        over its floor, ``train/loss_floor``: the loss of predicting the training targets
        exactly, fell below ``train_fraction`` of its excess at that lowest epoch), and the
        primary metric stood at least ``metric_drop`` below its best earlier epoch in each
        epoch of the climb (more on a split whose rarest class is a handful of images:
        :func:`_metric_noise`). Measured on the excess,
        the rule reads the same under label smoothing or MixUp, whose floor the train loss
        cannot cross (with smoothing 0.3 on 4 classes the floor is 0.78: the raw loss never
        halves). Measured on the metric, a validation loss that climbs from over-confidence
        while the metric holds (long runs without smoothing) is no harm. One epoch's spike
        that falls back is not a climb, and a model cannot overfit before it has learned:
        some epoch before the climb must have had skill above ``min_skill`` (:func:`skill`).
        A validation loss that climbs from an untrained model's is instability (eval-mode
        BatchNorm on tiny batches) or a collapse."""
        val = [finite(h["metrics"].get("loss")) for h in history]
        train = [finite(h["train"].get("train/loss")) for h in history]
        floor = [finite(h["train"].get("train/loss_floor")) or 0.0 for h in history]
        objective = [finite(h.get("objective")) for h in history]
        rising = cfg.rising_epochs
        if len(history) <= rising or None in val or None in train or None in objective:
            return None
        low = min(range(len(val) - rising), key=lambda i: val[i])
        # Skill before the climb, not at the lowest epoch: the lowest validation loss may come
        # epochs before the metric's best (measured: loss lowest at epoch 2 with skill 0.249, best
        # skill 0.52 at epoch 6, then a 30-epoch memorisation of noisy labels).
        learned = best_skill(history[:-rising])
        if learned is None or learned <= cfg.min_skill:
            return None
        climbing = all(val[i] > val[i - 1] for i in range(len(val) - rising, len(val))) and val[-rising - 1] >= val[low]
        se_low, se = (finite(history[i]["metrics"].get("loss_se")) or 0.0 for i in (low, -1))
        rise = val[-1] - val[low]
        noise = math.hypot(se_low, se)
        significant = rise > cfg.threshold * val[low] and rise > cfg.noise_se * noise
        excess, excess_then = train[-1] - floor[-1], train[low] - floor[low]
        fitting = excess < cfg.train_fraction * excess_then
        # The harm shows in each epoch of the climb, not only its last: a validation loss that
        # spikes for an epoch with the metric (BatchNorm or the optimiser's noise on a small
        # split) had the metric near its best in the climb's first epoch.
        drops = [max(objective[:i]) - objective[i]  # type: ignore[type-var, operator]
                 for i in range(len(objective) - rising, len(objective))]
        drop, harm = drops[-1], _metric_noise(cfg, history[-1]["metrics"])
        if climbing and significant and fitting and all(d >= harm for d in drops):
            return ({"val_loss_lowest": val[low], "lowest_epoch": low + 1, "skill_before": learned, "val_loss": val[-1],
                     "rise_in_se": rise / noise if noise > 0 else math.inf, "train_loss": train[-1],
                     "train_loss_then": train[low], "train_loss_floor": floor[-1], "metric_drop": drop},
                    f"validation loss up {rising} epochs running, > {1 + cfg.threshold:g} x and > {cfg.noise_se:g} "
                    f"standard errors above its lowest, the train loss's excess over its floor below "
                    f"{cfg.train_fraction:g} x its value then, the metric >= {cfg.metric_drop:g} below its best")
        return None

    @staticmethod
    def remedies(evidence: Evidence, cfg: Any, default: Any) -> list[Step]:
        steps: list[Step] = []
        regularise = [Change(k, value_of(default, k)) for k in ("data.hflip", "data.intensity")
                      if value_of(default, k) > value_of(cfg, k)]
        if has(cfg, "loss.label_smoothing"):
            regularise.append(Change("loss.label_smoothing", max(0.1, value_of(cfg, "loss.label_smoothing"))))
        if regularise:
            steps.append(Remedy("regularise: augment and smooth the labels", tuple(regularise)))
        lowest = evidence.get("lowest_epoch")
        if isinstance(lowest, int) and lowest > 0:
            # The run was at its best validation loss there: train that long, a little more.
            steps.append(Remedy("stop at the best epoch", (Change("fit.epochs", max(2, lowest + 1)),)))
        steps.append(Advice("more training data, or a smaller backbone"))
        return steps
