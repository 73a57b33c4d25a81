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


def lr_ratio(cfg: Any, default: Any) -> float:
    """The smallest (when below 1) or largest ratio of a parameter group's effective
    learning rate to the stage default's, over the groups; 1 when all equal."""
    ratios = [value_of(cfg, "optim.lr") * value_of(cfg, s) / (value_of(default, "optim.lr") * value_of(default, s))
              for s in LR_SCALES if value_of(default, s) > 0]
    low, high = min(ratios), max(ratios)
    return low if low < 1 / high else high


def restore_lr(why: str, cfg: Any, default: Any) -> Remedy:
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
    off = lr_ratio(cfg, default)
    if off <= 1 / ORDERS_OFF if direction == "raise" else off >= ORDERS_OFF:
        return restore_lr(f"{direction} the learning rate to the stage default", cfg, default)
    return Remedy(f"{direction} the learning rate", (Change("optim.lr", factor=_lr_factor(direction, evidence)),))


def lower_lr(evidence: Evidence, cfg: Any, default: Any) -> Remedy:
    """A learning rate too high: see :func:`_move_lr`."""
    return _move_lr("lower", evidence, cfg, default)


def pretrained(cfg: Any) -> bool:
    """The run starts from a pretrained backbone file (``model.backbone.pretrained_path``)."""
    return has(cfg, "model.backbone.pretrained_path") and bool(value_of(cfg, "model.backbone.pretrained_path"))


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


def too_fast(evidence: Evidence, cfg: Any, default: Any) -> list[Step]:
    """A learning rate too high: lower it, then warm up and clip."""
    return [lower_lr(evidence, cfg, default), warm_up(evidence, cfg, default)]


def stalled(evidence: Evidence, cfg: Any, default: Any) -> list[Step]:
    """A run whose weights barely move: raise the learning rate (:func:`raise_lr`)."""
    return [raise_lr(evidence, cfg, default),
            Advice("check which parts the stage trains: a frozen or saturated part cannot change the output")]


def has(cfg: Any, *keys: str) -> bool:
    """Does the config hold every one of the dotted ``keys``? (Stages differ.)"""
    flat = flatten(to_dict(cfg))
    return all(k in flat for k in keys)


def more_dice(evidence: Evidence, cfg: Any, default: Any) -> list[Step]:
    """Segmentation that predicts nothing: make predicting nothing cost (Dice beside
    BCE), and advice on rows without annotation."""
    advice = Advice("mark unannotated rows has_segmentation=false instead of giving them empty masks")
    if not has(cfg, "loss.name", "loss.bce_weight", "loss.dice_weight"):
        return [advice]
    # Predicting nothing is cheap under BCE and costs everything under Dice.
    return [Remedy("add Dice to BCE", (Change("loss.name", "combined"), Change("loss.bce_weight", 0.5),
                                       Change("loss.dice_weight", 0.5))),
            Remedy("weigh Dice above BCE", (Change("loss.name", "combined"), Change("loss.bce_weight", 0.2),
                                            Change("loss.dice_weight", 0.8))), advice]


def plan(rule: str, evidence: Evidence, cfg: Any, default: Any) -> list[Step]:
    """The ordered remedies of a diagnosis of ``rule`` with ``evidence``, for a trial
    whose config is ``cfg`` (``default``: the stage's default config): the rule's own
    :meth:`~medsight_ray.health.rule.Rule.remedies`."""
    from medsight_ray.health.rules import REGISTRY  # the rules build on this module

    return REGISTRY[rule].remedies(evidence, cfg, default)


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
