"""The ``inverted_localisation`` health rule: its settings, check, causes and remedies."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from medsight_ray.health.remedies import ORDERS_OFF, Advice, Evidence, Step, lower_lr, lr_ratio
from medsight_ray.health.rule import Finding, Rule, RuleConfig, Start, register
from medsight_ray.health.signals import update_ratios


@dataclass(frozen=True)
class InvertedLocalisationConfig(RuleConfig):
    """``inverted_localisation``.

    Attributes:
        threshold: CAM energy inside the boxes over the energy outside at or below which
            localisation is inverted (a ratio; 1 = no preference).
        grace: epochs before the rule may fire.
        alive_energy: mean CAM activation outside the boxes below which the CAMs are dead,
            not inverted (sigmoid units, 0 to 1).
        min_update: the run's largest epoch weight change per step (``train/update_ratio``)
            below which training has not moved the CAMs from their random start; the
            same scale as ``not_learning.max_update`` (measured: seed 001's stage-1
            rates 1.5e-6 to 2e-5 a step; the sign-flipped box loss 0.011-0.014).
    """

    threshold: float = 1.0
    grace: int = 1
    alive_energy: float = 0.05
    min_update: float = 2e-4


@register
class InvertedLocalisation(Rule):
    """inverted_localisation: see :meth:`check`; its settings: :class:`InvertedLocalisationConfig`."""

    name = "inverted_localisation"
    kind = "epoch"
    Config = InvertedLocalisationConfig
    causes = (
        'a localisation loss that rewards CAM outside the boxes (a truly flipped sign)',
        "a learning rate far too high (the demo's lr 1.0 trial ends here)",
        'boxes not moved with flipped images',
        'x and y swapped in the boxes',
    )
    fires_when = (
        'CAM energy inside the boxes ≤ outside while the CAMs are alive (mean outside ≥ 0.05) and training moved '
        "the weights (largest update ≥ 2e-4 of their norm a step: a stalled model's CAM is its random start, left"
        ' to `not_learning`), after 1 epoch'
    )
    origin = 'seed 001'

    @staticmethod
    def check(cfg: InvertedLocalisationConfig, history: list[dict[str, Any]], start: Start = None) -> Finding | None:
        """CAM energy inside the boxes not above the energy outside, after training moved the
        weights. A dead CAM (near 0 everywhere) is not inverted: it is left to
        ``dead_outputs``. Nor is the CAM of a model whose weights barely moved (largest
        ``train/update_ratio`` below ``min_update``, where measured): that is its random
        initial CAM, which sits on either side of 1 by chance (measured in stalled runs:
        0.97-1.06), and the run is stalled, not inverted (``not_learning``)."""
        m = history[-1]["metrics"]
        ratio, outside = m.get("energy_ratio"), m.get("energy_outside")
        alive = isinstance(outside, float) and outside >= cfg.alive_energy
        ratios = update_ratios(history)
        trained = not ratios or max(ratios) >= cfg.min_update
        if isinstance(ratio, float) and math.isfinite(ratio) and ratio <= cfg.threshold and alive and trained:
            return ({"energy_ratio": ratio, "energy_inside": m.get("energy_inside"),
                     "energy_outside": m.get("energy_outside")}, f"inside/outside CAM energy <= {cfg.threshold:g}")
        return None

    @staticmethod
    def remedies(evidence: Evidence, cfg: Any, default: Any) -> list[Step]:
        steps: list[Step] = [Advice("check the localisation loss: a step must raise the CAM inside the box"),
                             Advice("check box normalisation and flips with 'python -m medsight_ray.data check'")]
        if lr_ratio(cfg, default) >= ORDERS_OFF:
            steps.insert(0, lower_lr(evidence, cfg, default))
        return steps
