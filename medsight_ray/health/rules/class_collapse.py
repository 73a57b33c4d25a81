"""The ``class_collapse`` health rule: its settings, check, causes and remedies."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from medsight_ray.health.remedies import Advice, Change, Evidence, Remedy, Step, has, value_of
from medsight_ray.health.rule import Finding, Rule, RuleConfig, Start, register
from medsight_ray.health.signals import finite, macro_auc, ranked, update_ratios


@dataclass(frozen=True)
class ClassCollapseConfig(RuleConfig):
    """``class_collapse``: predictions that do not follow the true class shares. Either
    one class takes far more of the predictions than its true share (``threshold``, in
    ``collapse_epochs`` of the last ``collapse_window`` epochs), or a class with support
    is (almost) never predicted for ``starved_epochs`` epochs running, past the point
    where healthy runs have learned it. A correct model on a dataset that is 92 % one class predicts it about 92 % of
    the time and stays quiet. Single-label (multi-class) stages only.

    Attributes:
        threshold: predicted share minus true share of the most predicted class that
            counts as a collapse onto it (share units: 0.4 = 40 points).
        grace: epochs that neither fire nor count toward ``collapse_epochs``.
        collapse_epochs: epochs after the grace, the last one among them, in which the
            collapse onto one class must hold.
        collapse_window: the last judged epochs among which ``collapse_epochs`` must be
            collapsed (3: two of the last three). A collapse that comes back after one
            epoch spread out is the same collapse (measured: seed 003's recipe fell onto
            one class at epochs 2, 4 and 6, a different class each time, AUC 0.53-0.69,
            and spread out between; two epochs running never came).
        starved_fraction: a class with support is starved when its predicted share is
            below this fraction of its true share (0.1 = a tenth).
        starved_epochs: consecutive epochs (from epoch 1) a class must stay starved.
        starved_steps: optimiser steps (the epochs' ``train/steps``, where reported) those
            epochs must hold between them. A model learns a class in steps, not epochs:
            at batch 128 an epoch of real digits is 2 steps, and such a run starved a
            class holding 40 % for 7 epochs (14 steps), then learned it (skill 0.34).
            45 is the 5 epochs of 9-10 steps ``starved_epochs`` was set on.
        ranked_auc: an epoch whose macro AUC is at least this does not count toward a
            collapse onto one class: the model ranks the images by class, and only its
            output biases favour one class (a prior shift, which re-weighted recipes
            show for an epoch or two and training corrects). Measured: recipes that
            recovered to F1 0.66-0.80 leaned 79-100 % onto one class at AUC 0.92-0.99;
            seed 003's collapse held 93-100 % at AUC 0.68-0.73.
        min_steps: optimiser steps the run must have taken before the rule may fire. The
            grace and ``collapse_epochs`` were set on runs of 9-10 steps an epoch, and a
            model learns in steps: at batch 128 real digits are 2 steps an epoch, and such
            a run called every image one class at epoch 3, after 6 steps, at AUC 0.72
            rising to 0.99 (30 = those 3 epochs at 10 steps, the stall rules' minimum).
        min_update: the run's largest epoch weight change per step
            (``train/update_ratio``) below which training has not moved the weights, so
            the predictions are the random start's and not a collapse (the scale of
            ``not_learning.max_update``).
    """

    threshold: float = 0.4
    grace: int = 1
    collapse_epochs: int = 2
    collapse_window: int = 3
    starved_fraction: float = 0.1
    starved_epochs: int = 5
    starved_steps: int = 45
    ranked_auc: float = 0.85
    min_steps: int = 30
    min_update: float = 2e-4

    def epochs_needed(self) -> int:
        """The grace, then ``collapse_epochs`` collapsed epochs."""
        return self.grace + self.collapse_epochs


def _starved_streak(cfg: ClassCollapseConfig, history: list[dict[str, Any]]) -> tuple[int, float, list[str]]:
    """Epochs running (up to the last) in which some class with support was starved, the
    optimiser steps they held (``train/steps``; inf where an epoch does not report it, so
    the epochs alone decide), and the classes starved in every one of them."""
    streak, steps, starved_all = 0, 0.0, None
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
        epoch_steps = finite(h.get("train", {}).get("train/steps"))
        steps += epoch_steps if epoch_steps is not None else float("inf")
    return streak, steps, sorted(starved_all or ())


def _concentrated(cfg: ClassCollapseConfig, metrics: dict[str, Any], start: Start = None) -> dict[str, Any] | None:
    """Evidence that one class took ``threshold`` more of the predictions than its true
    share in one epoch's metrics while the ranking is not learned (macro AUC below
    ``ranked_auc``, where reported), and more than the untrained model gave it
    (``start``, where measured), else None."""
    hist, support = metrics.get("pred_histogram"), metrics.get("support")
    if not (isinstance(hist, dict) and hist and isinstance(support, dict) and sum(support.values())):
        return None
    if ranked(metrics, cfg.ranked_auc):
        return None  # the argmax leans, the ranking does not: a prior shift, not a collapse
    auc = macro_auc(metrics)
    top_class, share = max(hist.items(), key=lambda kv: kv[1])
    true_share = support.get(top_class, 0) / sum(support.values())
    before = (start or {}).get("pred_histogram")
    if isinstance(before, dict) and finite(before.get(top_class)) is not None \
            and before[top_class] - true_share >= cfg.threshold and share <= before[top_class]:
        # The untrained model already called the images this class: training did not
        # collapse it, it has not moved it (a stall, which the stall rules judge).
        return None
    if share - true_share >= cfg.threshold:
        evidence = {"top_class": top_class, "predicted_share": share, "true_share": true_share}
        return evidence if auc is None else {**evidence, "auc_macro": auc}
    return None


def _top(hist: Any) -> str | None:
    """The most predicted class of a ``pred_histogram`` (None without one)."""
    return max(hist.items(), key=lambda kv: kv[1])[0] if isinstance(hist, dict) and hist else None


def _stayed_put(history: list[dict[str, Any]], start: Start) -> bool:
    """Every epoch's most predicted class is the untrained model's (``start``): the
    calls never left where they began. Measured, seed 003's recipe on synthetic data:
    the untrained model called 91 % of the images one class, training moved every call
    onto another at epoch 1, then back onto the first at 85-90 % (AUC 0.65-0.67): a
    collapse, where the lr 1e-7 runs' calls never moved."""
    first = _top((start or {}).get("pred_histogram"))
    return first is not None and all(_top(h["metrics"].get("pred_histogram")) in (first, None) for h in history)


def _starved_ranked(cfg: ClassCollapseConfig, metrics: dict[str, Any], starved: list[str]) -> bool:
    """The starved classes are ranked: each one's own one-vs-rest AUC (``auc_per_class``)
    at least ``ranked_auc`` (the macro AUC where the per-class one is not reported). A
    class ranked but never the argmax is a threshold that leans; a class not ranked is
    one the model cannot see (a sampler that never draws it: its own AUC stays low while
    the macro AUC, carried by the other classes, is high)."""
    per_class = metrics.get("auc_per_class")
    if isinstance(per_class, dict) and starved and all(finite(per_class.get(c)) is not None for c in starved):
        return min(float(per_class[c]) for c in starved) >= cfg.ranked_auc
    return ranked(metrics, cfg.ranked_auc)


def _neglects_minorities(evidence: Evidence) -> bool:
    """Do the predictions neglect the minority classes? Every starved class (never
    predicted for ``starved_epochs`` running) is a minority: its true share is below the
    mean share, 1 / classes. A collapse onto one class does not say: the class it falls
    onto can change from epoch to epoch (seed 003's recipe fell onto a different class
    at epochs 2, 4 and 6), so one epoch's top class is no direction. False where the
    evidence does not say (no class count)."""
    classes, shares = evidence.get("classes"), evidence.get("true_shares")
    if not isinstance(classes, int) or classes < 2 or not isinstance(shares, dict) or not shares:
        return False
    return all(v < 1.0 / classes for v in shares.values())


def _less_for_minorities(key: str, current: Any, default: Any) -> bool:
    """Would setting ``key`` from ``current`` back to ``default`` do less for the minority
    classes? Oversampling turned off, or class weights made lighter (a lower power or
    cap). A custom class mix (``sampler.class_fractions``) is not counted: it may be what
    starves a class (a fraction of 0 never draws it, the zoo's
    ``minority_never_predicted``), and the default mix under an oversampling sampler
    draws every class equally often, which starves none."""
    if key == "sampler.balanced":
        return bool(current) and not default
    if key in ("loss.class_weight_power", "loss.class_weight_max"):
        return default < current
    return False


#: The class-balance recipe of a single-label stage: loss, class weights, sampler, MixUp.
BALANCE_KEYS = ("loss.name", "loss.label_smoothing", "loss.class_weight_power", "loss.class_weight_min",
                "loss.class_weight_max", "sampler.balanced", "sampler.class_fractions", "mixup_prob")


@register
class ClassCollapse(Rule):
    """class_collapse: see :meth:`check`; its settings: :class:`ClassCollapseConfig`."""

    name = "class_collapse"
    kind = "epoch"
    Config = ClassCollapseConfig
    causes = (
        'focal loss on top of heavy class weights starves the majority classes (seed 003)',
        'minority oversampled in every batch',
        'a sampler class mix that draws a class rarely or never (sampler.class_fractions below 1)',
        'MixUp on tiny batches',
        (
            "not the class-balance recipe, which is the stage's own here: the data's class shares or labels, or "
            'steps large enough to swing the output biases from class to class'
        ),
    )
    fires_when = (
        'grading: one class predicted ≥ 40 points above its true share while the macro AUC is < 0.85, in 2 of the'
        ' last 3 epochs after the first, the last included (a collapse that spreads out for an epoch and comes '
        'back is one collapse; a healthy run may call every image one class after epoch 1; at a higher AUC the '
        'ranking is learned and only the output biases lean, which re-weighted recipes show for an epoch or two '
        'and recover from), or a class with support predicted at < 1/10 of its true share for 5 epochs and 45 '
        'optimiser steps running (a class is learned in steps: at batch 128 real digits are 2 steps an epoch); '
        "after 30 optimiser steps. On the stage's own class-balance recipe it warns: it has no cause in the config"
        ' to name and no cure, and the rules that judge whether the run learns stop it if it does not'
    )
    origin = 'seeds 001, 003'

    @staticmethod
    def check(cfg: ClassCollapseConfig, history: list[dict[str, Any]], start: Start = None) -> Finding | None:
        """Predicted class shares against the true shares (``support``): one class predicted
        ``threshold`` more than its true share, with the ranking not learned (macro AUC
        below ``ranked_auc``), in ``collapse_epochs`` of the last ``collapse_window`` epochs
        after the ``grace`` epochs, the last one included (it may be another class each
        epoch: a collapse that spreads out for an epoch and comes back is one collapse), or
        a class with support starved (predicted below ``starved_fraction`` of its true
        share) for ``starved_epochs`` epochs and ``starved_steps`` optimiser steps running
        (a class is learned in steps: a large batch takes more epochs to learn it), its own ranking not learned
        (:func:`_starved_ranked`: a minority never predicted at AUC 0.93 is a threshold that
        leans, not a class the model cannot see). A collapse is what training did to the
        predictions, so neither a model whose weights barely moved (largest
        ``train/update_ratio`` below ``min_update``, the scale of ``not_learning``: measured
        on real digits at lr 1e-7, 1.5e-7 a step, with every image called one class as
        BatchNorm's statistics shifted) nor one that the untrained model's calls (``start``)
        already concentrated on that class, and that never left it, has collapsed: it
        stayed put, which the stall rules judge (:func:`_stayed_put`). The grace epochs do
        not count: a healthy run may call every image one
        class after its first epoch (measured: balanced 4-class grading, 100 % one class at
        epoch 1, 68 % at epoch 2 with F1 0.55; seed 003's recipe stays there, 85-100 % on a
        class holding 13-33 %). Multi-label stages are left to ``chance_metric`` and
        ``dead_outputs``: an uncalibrated model with a good ranking predicts one thresholded
        label set for most images (measured: stage 3 at epoch 2, 89 % one set, AUC 0.74 and
        rising)."""
        ratios = update_ratios(history)
        if ratios and max(ratios) < cfg.min_update:
            return None  # the weights have not moved: the calls are the random start's
        # The untrained model's calls excuse a concentration only while the calls stayed put:
        # calls that training moved onto another class and back were moved, not left.
        kept = start if _stayed_put(history, start) else None
        recent = [_concentrated(cfg, h["metrics"], kept) for h in history[cfg.grace:][-cfg.collapse_window:]]
        if recent and recent[-1] and sum(map(bool, recent)) >= cfg.collapse_epochs:
            return recent[-1], (f"one class predicted >= {cfg.threshold:g} above its true share, AUC < "
                                f"{cfg.ranked_auc:g}, in {cfg.collapse_epochs} of the last "
                                f"{cfg.collapse_window} epochs")
        streak, steps, starved = _starved_streak(cfg, history)
        if streak >= cfg.starved_epochs and steps >= cfg.starved_steps \
                and not _starved_ranked(cfg, history[-1]["metrics"], starved):
            m = history[-1]["metrics"]
            total = sum(m["support"].values())
            return ({"starved_classes": starved, "epochs": streak,
                     **({"steps": steps} if steps != float("inf") else {}),
                     "classes": sum(n > 0 for n in m["support"].values()),
                     "true_shares": {c: m["support"][c] / total for c in starved},
                     "predicted_shares": {c: m["pred_histogram"].get(c, 0.0) for c in starved}},
                    f"a class with support predicted < {cfg.starved_fraction:g} x its true share "
                    f"for {cfg.starved_epochs} epochs and {cfg.starved_steps} steps")
        return None

    @classmethod
    def causes_for(cls, evidence: Evidence, cfg: Any, default: Any) -> tuple[str, ...]:
        """The parts of the run's class-balance recipe that can cause a collapse, each
        named only where the config holds it: focal loss or class weights heavier than
        the stage's, an oversampling sampler, a class mix that draws a class below its
        balanced share, MixUp. A run on the stage's own recipe is told so, and where else
        to look: naming focal loss on a cross-entropy run sends the reader the wrong way."""
        focal, oversampled, starved_mix, mixup, elsewhere = cls.causes
        if not has(cfg, *BALANCE_KEYS):
            return cls.causes  # a stage without this recipe: the evidence cannot choose
        chosen = []
        # Weights heavier than the stage's: a higher power, or clamps opened wider.
        heavier = value_of(cfg, "loss.class_weight_power") > value_of(default, "loss.class_weight_power") \
            or value_of(cfg, "loss.class_weight_max") > value_of(default, "loss.class_weight_max") \
            or value_of(cfg, "loss.class_weight_min") < value_of(default, "loss.class_weight_min")
        if value_of(cfg, "loss.name") == "focal" or heavier:
            chosen.append(focal)
        if value_of(cfg, "sampler.balanced"):
            fractions = value_of(cfg, "sampler.class_fractions") or ()
            if any(f > 1 for f in fractions) or all(f == 1 for f in fractions):  # all(): true when none given
                chosen.append(oversampled)
            if any(f < 1 for f in fractions):
                chosen.append(starved_mix)
        if value_of(cfg, "mixup_prob") > 0:
            chosen.append(mixup)
        return tuple(chosen) or (elsewhere,)

    @classmethod
    def stops(cls, evidence: Evidence, cfg: Any, default: Any) -> bool:
        """Only where the run's class-balance recipe holds a part that can cause a collapse
        (:meth:`causes_for`). On the stage's own recipe the rule can name no cause in the
        config and no cure (its remedies are the recipe), so it warns, and the rules that
        judge whether the run learns (``chance_metric``, ``loss_falls_metric_flat``)
        stop it if it does not. Measured, real digits at SGD lr 3 on the stage's recipe:
        a loss blown up to 3-4x the start's, every image one class at epochs 2-4 (AUC
        0.54-0.81), then F1 0.97-0.98 by epoch 6 in two seeds of three; and labels
        shuffled, where the collapse fired beside ``chance_metric``, whose advice (the
        labels) is the right one."""
        return cls.causes_for(evidence, cfg, default) != cls.causes[-1:]

    @staticmethod
    def remedies(evidence: Evidence, cfg: Any, default: Any) -> list[Step]:
        """The class-balance recipe back, then larger batches, then even sampling for a
        starved class. A cure points against the imbalance the evidence measured: where
        the predictions neglect the minority classes (:func:`_neglects_minorities`), what
        the config does for them (oversampling, heavier weights) stays, since taking it
        away would starve them further; otherwise (majorities starved, a collapse onto
        one class, or no direction in the evidence) the whole recipe comes back."""
        steps: list[Step] = []
        keys = [k for k in BALANCE_KEYS if has(cfg, k)]
        if _neglects_minorities(evidence):
            keys = [k for k in keys if not _less_for_minorities(k, value_of(cfg, k), value_of(default, k))]
        if keys:
            steps.append(Remedy("back to the stage's class-balance recipe (CE with smoothing, clamped weights, "
                                "no oversampling, no MixUp)", tuple(Change(k, value_of(default, k)) for k in keys)))
        if value_of(cfg, "fit.batch_size") < 16:
            steps.append(Remedy("larger batches", (Change("fit.batch_size", 32),)))
        if evidence.get("starved_classes") and has(cfg, "sampler.balanced"):
            # A class never predicted on the default recipe: draw every class equally often.
            steps.append(Remedy("sample the classes evenly", (Change("sampler.balanced", True),)))
        return [*steps, Advice("check the class shares of the data with 'python -m medsight_ray.data check'")]
