"""The ``dead_outputs`` health rule: its settings, check, causes and remedies."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from medsight_ray.health.remedies import CHECK_DATA, Evidence, Step, too_fast
from medsight_ray.health.rule import Finding, Rule, RuleConfig, Start, register
from medsight_ray.health.signals import finite, macro_auc, update_ratios


@dataclass(frozen=True)
class DeadOutputsConfig(RuleConfig):
    """``dead_outputs``: the outputs died, seen from the first epoch on. Any one of:
    every output gives every image the same probability, in validation and in training
    alike (eval mode alone can saturate while BatchNorm's running statistics still hold
    their initial values, measured after 4 steps at lr 0.03, and that run recovers); the
    CAMs are dark inside the boxes and outside (the training outputs constant too); or
    an AUC so far below 0.5 that the ranking is inverted.

    Attributes:
        threshold: largest standard deviation across images of any output's probability
            (``score_spread``) below which the outputs are constant (probability units;
            measured: 0 for the saturated outputs of lr 1.0, 0.007 for healthy stage 3 at
            epoch 1, the lowest healthy value seen).
        alive_energy: mean sigmoid CAM below which the CAMs count as dark, inside the
            boxes and outside alike (sigmoid units, 0 to 1).
        inverted_se: an AUC below 0.5 and more than this many of its chance-level
            standard errors (``auc_se``, from the split's class counts) below the
            untrained model's own AUC (``health.baseline_eval``) is a ranking training
            inverted.
        min_update: the run's largest epoch weight change per step
            (``train/update_ratio``) below which training has not moved the ranking and
            an AUC below the start is not judged inverted (the scale of
            ``not_learning.max_update``).
        grace: epochs before the rule may fire (0: from the first epoch).
    """

    threshold: float = 1e-4
    alive_energy: float = 0.05
    inverted_se: float = 4.0
    min_update: float = 2e-4


@register
class DeadOutputs(Rule):
    """dead_outputs: see :meth:`check`; its settings: :class:`DeadOutputsConfig`."""

    name = "dead_outputs"
    kind = "epoch"
    Config = DeadOutputsConfig
    causes = (
        (
            'a learning rate far too high: the outputs saturated (every image gets the same answer, the CAMs are '
            'dark everywhere)'
        ),
        'labels not aligned with images (an AUC far below 0.5 ranks the classes backwards)',
    )
    fires_when = (
        "from epoch 1: every output's probability varies by < 0.0001 across images in validation and in training "
        "alike (eval mode alone saturates while BatchNorm's running statistics are young, and such runs recover),"
        ' or the CAMs are dark (< 0.05) inside and outside the boxes, or the AUC is below 0.5 and more than 4 of '
        "its chance-level standard errors (from the split's class counts) below the untrained model's own AUC, "
        'measured before the first step (an untrained network is no random permutation of the labels: its AUC was'
        ' 0.42 on real digits, and a learning rate too low then kept it there; without a measured start the '
        "ranking is not judged). Outputs already constant before the first step are `outputs_ignore_input`'s "
        '(remedy: lower the lr)'
    )
    origin = "the demo's lr = 1.0 trial"

    @staticmethod
    def check(cfg: DeadOutputsConfig, history: list[dict[str, Any]], start: Start = None) -> Finding | None:
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
        spread = finite(m.get("score_spread"))
        inside, outside = finite(m.get("energy_inside")), finite(m.get("energy_outside"))
        auc, se = macro_auc(m), finite(m.get("auc_se"))
        start = start or {}
        # Validation runs in eval mode; outputs that died are constant in train mode too.
        # Outputs alive in train mode are an eval-mode artefact (BatchNorm running statistics
        # that still hold their initial values after a few steps), and the run recovers.
        train_spread = finite(history[-1].get("train", {}).get("train/score_spread"))
        dead_in_training = train_spread is None or train_spread < cfg.threshold
        start_spread = finite(start.get("score_spread"))
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
        start_auc = macro_auc(start)
        ratios = update_ratios(history)
        trained = not ratios or max(ratios) >= cfg.min_update
        if auc is not None and se is not None and start_auc is not None and auc < 0.5 and trained \
                and auc < start_auc - cfg.inverted_se * se:
            return ({"auc_macro": auc, "start_auc": start_auc, "auc_se": se},
                    f"AUC < 0.5 and > {cfg.inverted_se:g} x its chance-level standard error ({se:.3f}) below the "
                    f"untrained model's {start_auc:.3f}")
        return None

    @classmethod
    def causes_for(cls, evidence: Evidence, cfg: Any, default: Any) -> tuple[str, ...]:
        """Each branch has its own cause: outputs or CAMs that died are a learning rate too
        high; a ranking turned below the model's own start is labels that do not belong
        to their images (see :meth:`remedies`)."""
        return cls.causes[1:] if "start_auc" in evidence else cls.causes[:1]

    @staticmethod
    def remedies(evidence: Evidence, cfg: Any, default: Any) -> list[Step]:
        """Saturated outputs or dark CAMs: a learning rate too high (lower it, then warm
        up). A ranking turned below the model's own start is not that: a learning rate
        too high scrambles a ranking or saturates it, while an AUC many standard errors
        below the start is a consistent ranking, learnt backwards, which labels that do
        not belong to their images give. So that evidence gets the data check alone, and
        no learning-rate change, which would retrain the same labels."""
        if "start_auc" in evidence:
            return [CHECK_DATA]
        return too_fast(evidence, cfg, default)
