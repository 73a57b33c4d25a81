"""Remedies as data: the config changes that cure a diagnosis, sized from its evidence.

A :class:`Remedy` is one attempt at a cure: one or more :class:`Change` of the stage's
config (a key set to a value, or scaled by a factor). :func:`plan` turns a diagnosis
(its rule and evidence) and the trial's own config into an ordered list of remedies,
with :class:`Advice` for what is not a config change (the data, a bug in code), which
is shown and never applied. The words a person reads are generated from the changes
(:meth:`Remedy.words`), so words and actions cannot drift apart.

Sizing. A learning rate an order of magnitude or more off the stage's default goes
back to the default (not x0.1 twice); one within that range moves by a factor read off
the measured per-step weight change (``update_ratio``) where the diagnosis has it.
A remedy that would change nothing, because the config already holds its values, is
not applicable (:meth:`Remedy.applicable`) and is skipped by :func:`next_remedy`.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass
from typing import Any

from medsight_ray.config import apply_overrides, flatten, to_dict

#: A learning rate this many times off the stage default is reset to the default.
ORDERS_OFF = 10.0
#: Per-step weight change (relative to the weights' norm) of healthy default runs,
#: measured 0.012-0.022 on every stage: the target a learning-rate change aims at.
HEALTHY_UPDATE = 0.015
#: The learning-rate groups and their scales: the effective lr of a group is
#: ``optim.lr`` x its scale.
LR_SCALES = ("optim.backbone_lr_scale", "optim.head_lr_scale", "optim.prototype_lr_scale")


def value_of(cfg: Any, key: str) -> Any:
    """The value at dotted ``key`` in a config dataclass.

    Raises:
        KeyError: ``key`` is not a key of ``cfg``.
    """
    return flatten(to_dict(cfg))[key]


def _same(a: Any, b: Any) -> bool:
    if isinstance(a, float) or isinstance(b, float):
        try:
            return math.isclose(float(a), float(b), rel_tol=1e-9, abs_tol=0.0)
        except (TypeError, ValueError):
            return False
    return a == b


def _fmt(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.3g}"
    if isinstance(value, (list, tuple)):
        return ",".join(_fmt(v) for v in value)
    return str(value).lower() if isinstance(value, bool) else str(value)


@dataclass(frozen=True)
class Change:
    """One change of a config key: set to ``value``, or (with ``factor``) scaled.

    Attributes:
        key: dotted config key, e.g. ``optim.lr``.
        value: the new value (when ``factor`` is None).
        factor: multiply the current value by this instead.
    """

    key: str
    value: Any = None
    factor: float | None = None

    def target(self, current: Any) -> Any:
        """The key's value after the change, from its ``current`` value."""
        return current * self.factor if self.factor is not None else self.value


@dataclass(frozen=True)
class Remedy:
    """One attempt at a cure: config changes made together.

    Attributes:
        why: what the changes do, in a few words (``lower the learning rate``).
        changes: the changes, applied in order.
    """

    why: str
    changes: tuple[Change, ...]

    def changed(self, cfg: Any) -> dict[str, Any]:
        """``{key: new value}`` of the changes that change something on ``cfg``."""
        flat = flatten(to_dict(cfg))  # once: every change reads the same config
        out: dict[str, Any] = {}
        for change in self.changes:
            new = change.target(flat[change.key])
            if not _same(new, flat[change.key]):
                out[change.key] = new
        return out

    def applicable(self, cfg: Any) -> bool:
        """True when applying it to ``cfg`` would change something."""
        return bool(self.changed(cfg))

    def apply(self, cfg: Any) -> Any:
        """``cfg`` with the changes applied (validated like ``--set``)."""
        return apply_overrides(cfg, self.changed(cfg))

    def overrides(self, cfg: Any) -> list[str]:
        """The changes as ``key=value`` overrides, as a user would write them."""
        return [f"{k}={_fmt(v)}" for k, v in self.changed(cfg).items()]

    def words(self, cfg: Any) -> str:
        """``why (key a -> b, ...)``, generated from the changes on ``cfg``."""
        moves = ", ".join(f"{k} {_fmt(value_of(cfg, k))} -> {_fmt(v)}" for k, v in self.changed(cfg).items())
        return f"{self.why} ({moves})" if moves else self.why


@dataclass(frozen=True)
class Advice:
    """A remedy that is not a config change (the data, code): shown, never applied."""

    text: str

    def words(self, cfg: Any = None) -> str:
        """The advice itself."""
        return self.text


Step = Remedy | Advice
Evidence = Mapping[str, Any]
Planner = Callable[[Evidence, Any, Any], list[Step]]

CHECK_DATA = Advice("check the data with 'python -m medsight_ray.data check --data URI' (labels, boxes, row order)")


def _lr_ratio(cfg: Any, default: Any) -> float:
    """The smallest (when below 1) or largest ratio of a parameter group's effective
    learning rate to the stage default's, over the groups; 1 when all equal."""
    ratios = [value_of(cfg, "optim.lr") * value_of(cfg, s) / (value_of(default, "optim.lr") * value_of(default, s))
              for s in LR_SCALES if value_of(default, s) > 0]
    low, high = min(ratios), max(ratios)
    return low if low < 1 / high else high


def _restore_lr(why: str, cfg: Any, default: Any) -> Remedy:
    """The stage default's optimiser, learning rate and group scales: a learning rate
    suited to another optimiser (SGD's is 10-100x Adam's) is no default at all."""
    return Remedy(why, tuple(Change(k, value_of(default, k)) for k in ("optim.name", "optim.lr", *LR_SCALES)))


#: Factor bounds of a learning-rate move sized from the measured weight change, by
#: direction: never less than x2 or more than x10 up, x0.5 to x0.01 down.
LR_MOVES = {"raise": (2.0, 10.0), "lower": (0.01, 0.5)}


def _lr_factor(direction: str, evidence: Evidence) -> float:
    """The factor that brings the measured per-step weight change (``update_ratio``) to
    a healthy one, within :data:`LR_MOVES` (x10 or x0.1 unmeasured)."""
    low, high = LR_MOVES[direction]
    measured = evidence.get("update_ratio")
    if isinstance(measured, (int, float)) and measured > 0 and math.isfinite(measured):
        return min(high, max(low, HEALTHY_UPDATE / measured))
    return high if direction == "raise" else 0.1


def _move_lr(direction: str, evidence: Evidence, cfg: Any, default: Any) -> Remedy:
    """Back to the stage default when ``ORDERS_OFF`` x off it the wrong way; else by
    :func:`_lr_factor`."""
    off = _lr_ratio(cfg, default)
    if off <= 1 / ORDERS_OFF if direction == "raise" else off >= ORDERS_OFF:
        return _restore_lr(f"{direction} the learning rate to the stage default", cfg, default)
    return Remedy(f"{direction} the learning rate", (Change("optim.lr", factor=_lr_factor(direction, evidence)),))


def lower_lr(evidence: Evidence, cfg: Any, default: Any) -> Remedy:
    """A learning rate too high: see :func:`_move_lr`."""
    return _move_lr("lower", evidence, cfg, default)


def pretrained(cfg: Any) -> bool:
    """The run starts from a pretrained backbone file (``model.backbone.pretrained_path``)."""
    return _has(cfg, "model.backbone.pretrained_path") and bool(value_of(cfg, "model.backbone.pretrained_path"))


def raise_lr(evidence: Evidence, cfg: Any, default: Any) -> Remedy:
    """A learning rate too low (seed 001's 100x too low rates): see :func:`_move_lr`.
    A pretrained backbone keeps its rate: fine-tuning runs at 1e-4 or below on purpose,
    and the stage default (set for a random start) would wash its features out. Its
    freshly initialised head is what a low rate starves, so the head's rate rises."""
    if not pretrained(cfg):
        return _move_lr("raise", evidence, cfg, default)
    return Remedy("raise the head's learning rate; the pretrained backbone keeps its own",
                  (Change("optim.head_lr_scale", factor=_lr_factor("raise", evidence)),))


def warm_up(evidence: Evidence, cfg: Any, default: Any) -> Remedy:
    """Linear warmup over a tenth of the steps, with gradient clipping on."""
    return Remedy("warm up and clip gradients", (Change("optim.scheduler", "cosine"),
                                                 Change("optim.warmup_fraction", 0.1), Change("fit.grad_clip", 1.0)))


def _too_fast(evidence: Evidence, cfg: Any, default: Any) -> list[Step]:
    return [lower_lr(evidence, cfg, default), warm_up(evidence, cfg, default)]


def _non_finite(evidence: Evidence, cfg: Any, default: Any) -> list[Step]:
    return [*_too_fast(evidence, cfg, default), Remedy("train in full precision", (Change("fit.amp", False),)),
            CHECK_DATA]


def _outputs_ignore_input(evidence: Evidence, cfg: Any, default: Any) -> list[Step]:
    # No config change gives a model information its input does not carry.
    return [Advice("look at the images the model is given: 'python -m medsight_ray.data check --data URI' "
                   "counts byte-identical images; open a few decoded ones (window, bit depth, decode errors)"),
            Advice("check that every part between the input and the output trains or passes the input on")]


def _loss_scale_collapse(evidence: Evidence, cfg: Any, default: Any) -> list[Step]:
    # Full precision cures an overflow of float16's range, and harms no cause: a
    # learning rate too high then shows as itself (non_finite, exploding_gradients).
    return [Remedy("train in full precision", (Change("fit.amp", False),)), CHECK_DATA]


def _stalled(evidence: Evidence, cfg: Any, default: Any) -> list[Step]:
    return [raise_lr(evidence, cfg, default),
            Advice("check which parts the stage trains: a frozen or saturated part cannot change the output")]


def _dead_outputs(evidence: Evidence, cfg: Any, default: Any) -> list[Step]:
    steps: list[Step] = _too_fast(evidence, cfg, default)
    auc, se = evidence.get("auc_macro"), evidence.get("auc_se")
    if isinstance(auc, (int, float)) and isinstance(se, (int, float)):
        steps.insert(0, CHECK_DATA)  # an AUC far below 0.5 ranks backwards: labels, not the lr
    return steps


def _chance_metric(evidence: Evidence, cfg: Any, default: Any) -> list[Step]:
    # At chance with a learning rate far above the default, the outputs died.
    if _lr_ratio(cfg, default) >= ORDERS_OFF:
        return [*_too_fast(evidence, cfg, default), CHECK_DATA]
    # At chance while the optimiser moves the weights at a learning rate's healthy pace:
    # the rate is not too low, and raising it is no cure (the labels or the inputs teach
    # nothing the metric rewards). The evidence cannot tell which, so nothing changes.
    moved = evidence.get("update_ratio")
    if isinstance(moved, (int, float)) and _has(cfg, "health.not_learning.max_update") \
            and moved >= value_of(cfg, "health.not_learning.max_update"):
        return [CHECK_DATA, Advice("the weights move at a healthy rate, so a learning rate too low is not the "
                                   "cause: check that the labels belong to the images and that the images differ")]
    return [raise_lr(evidence, cfg, default), CHECK_DATA]


def _diverging(evidence: Evidence, cfg: Any, default: Any) -> list[Step]:
    return [*_too_fast(evidence, cfg, default),
            Advice("write the training rows in random order (the importers do)")]


def _unmixed(evidence: Evidence, cfg: Any, default: Any) -> list[Step]:
    # A buffer of a few thousand rows mixes any split whose label runs are shorter; it
    # holds decoded images, so it stops there (4096 at 224 px RGB float is 2.4 GB).
    buffer = value_of(cfg, "fit.shuffle_buffer")
    bigger = Change("fit.shuffle_buffer", max(buffer, min(4096, 16 * buffer)))
    return [Remedy("mix the batches with a larger shuffle buffer", (bigger,)),
            Advice("write the training rows in random order (python -m medsight_ray.data import does)")]


def _overfitting(evidence: Evidence, cfg: Any, default: Any) -> list[Step]:
    # Regularising first: it removes a cause and raises the peak (measured on 30 %
    # noisy labels: the stage's augmentation and smoothing peak at F1 0.70 where the
    # unregularised recipe peaks at 0.65). Stopping at the best epoch only keeps the
    # peak the run already had (the best checkpoint keeps it too) and saves the epochs.
    steps: list[Step] = []
    regularise = [Change(k, value_of(default, k)) for k in ("data.hflip", "data.intensity")
                  if value_of(default, k) > value_of(cfg, k)]
    if _has(cfg, "loss.label_smoothing"):
        regularise.append(Change("loss.label_smoothing", max(0.1, value_of(cfg, "loss.label_smoothing"))))
    if regularise:
        steps.append(Remedy("regularise: augment and smooth the labels", tuple(regularise)))
    lowest = evidence.get("lowest_epoch")
    if isinstance(lowest, int) and lowest > 0:
        # The run was at its best validation loss there: train that long, a little more.
        steps.append(Remedy("stop at the best epoch", (Change("fit.epochs", max(2, lowest + 1)),)))
    steps.append(Advice("more training data, or a smaller backbone"))
    return steps


def _has(cfg: Any, *keys: str) -> bool:
    flat = flatten(to_dict(cfg))
    return all(k in flat for k in keys)


#: The class-balance recipe of a single-label stage: loss, class weights, sampler, MixUp.
BALANCE_KEYS = ("loss.name", "loss.label_smoothing", "loss.class_weight_power", "loss.class_weight_min",
                "loss.class_weight_max", "sampler.balanced", "sampler.class_fractions", "mixup_prob")


def _class_collapse(evidence: Evidence, cfg: Any, default: Any) -> list[Step]:
    steps: list[Step] = []
    keys = [k for k in BALANCE_KEYS if _has(cfg, k)]
    if keys:
        steps.append(Remedy("back to the stage's class-balance recipe (CE with smoothing, clamped weights, "
                            "no oversampling, no MixUp)", tuple(Change(k, value_of(default, k)) for k in keys)))
    if value_of(cfg, "fit.batch_size") < 16:
        steps.append(Remedy("larger batches", (Change("fit.batch_size", 32),)))
    if evidence.get("starved_classes") and _has(cfg, "sampler.balanced"):
        # A class never predicted on the default recipe: draw every class equally often.
        steps.append(Remedy("sample the classes evenly", (Change("sampler.balanced", True),)))
    return [*steps, Advice("check the class shares of the data with 'python -m medsight_ray.data check'")]


def _prediction_collapse(evidence: Evidence, cfg: Any, default: Any) -> list[Step]:
    advice = Advice("mark unannotated rows has_segmentation=false instead of giving them empty masks")
    if not _has(cfg, "loss.name", "loss.bce_weight", "loss.dice_weight"):
        return [advice]
    # Predicting nothing is cheap under BCE and costs everything under Dice.
    return [Remedy("add Dice to BCE", (Change("loss.name", "combined"), Change("loss.bce_weight", 0.5),
                                       Change("loss.dice_weight", 0.5))),
            Remedy("weigh Dice above BCE", (Change("loss.name", "combined"), Change("loss.bce_weight", 0.2),
                                            Change("loss.dice_weight", 0.8))), advice]


def _loss_falls_metric_flat(evidence: Evidence, cfg: Any, default: Any) -> list[Step]:
    if _has(cfg, "loss.dice_weight"):
        return _prediction_collapse(evidence, cfg, default)
    if _has(cfg, "loss.beta"):
        return [Remedy("weigh the localisation term less", (Change("loss.beta", factor=0.5),)), CHECK_DATA]
    return [CHECK_DATA]


def _prototype_collapse(evidence: Evidence, cfg: Any, default: Any) -> list[Step]:
    steps: list[Step] = []
    if _has(cfg, "loss.temperature"):
        tau = value_of(cfg, "loss.temperature")
        steps.append(Remedy("raise the contrastive temperature toward 0.5",
                            (Change("loss.temperature", min(0.5, 3 * tau)),)))
    return [*steps, Remedy("lower the prototype learning rate", (Change("optim.prototype_lr_scale", factor=0.1),)),
            Advice("check that stage 1's CAMs localise (energy_ratio > 1)")]


def _inverted_localisation(evidence: Evidence, cfg: Any, default: Any) -> list[Step]:
    steps: list[Step] = [Advice("check the localisation loss: a step must raise the CAM inside the box"),
                         Advice("check box normalisation and flips with 'python -m medsight_ray.data check'")]
    if _lr_ratio(cfg, default) >= ORDERS_OFF:
        steps.insert(0, lower_lr(evidence, cfg, default))
    return steps


#: Each rule's planner: (evidence, config, stage default config) -> ordered remedies.
PLANNERS: dict[str, Planner] = {
    "non_finite": _non_finite,
    "loss_scale_collapse": _loss_scale_collapse,
    "outputs_ignore_input": _outputs_ignore_input,
    "exploding_gradients": _too_fast,
    "oversized_updates": _too_fast,
    "diverging_loss": _diverging,
    "dead_outputs": _dead_outputs,
    "vanishing_gradients": _stalled,
    "not_learning": _stalled,
    "chance_metric": _chance_metric,
    "unmixed_batches": _unmixed,
    "overfitting": _overfitting,
    "class_collapse": _class_collapse,
    "prediction_collapse": _prediction_collapse,
    "loss_falls_metric_flat": _loss_falls_metric_flat,
    "prototype_collapse": _prototype_collapse,
    "inverted_localisation": _inverted_localisation,
}


def plan(rule: str, evidence: Evidence, cfg: Any, default: Any) -> list[Step]:
    """The ordered remedies of a diagnosis of ``rule`` with ``evidence``, for a trial
    whose config is ``cfg`` (``default``: the stage's default config)."""
    return PLANNERS[rule](evidence, cfg, default)


def next_remedy(steps: list[Step], cfg: Any, tried: Collection[str] = ()) -> Remedy | None:
    """The first remedy of ``steps`` that would change ``cfg`` and is not one of
    ``tried`` (the :attr:`Remedy.why` of each remedy a lineage already applied), or
    None (advice is never applied).

    A remedy that sets keys drops out by itself once applied (the config holds its
    values); one that scales a key (the lr x0.1) would apply again, so it is skipped by
    name. Counting the tried remedies instead would skip twice: the applied remedy is
    no longer applicable on the remedied config, and the count then passes over the
    next one.
    """
    return next((s for s in steps if isinstance(s, Remedy) and s.why not in tried and s.applicable(cfg)), None)
