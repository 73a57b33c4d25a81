"""Health monitor settings: per rule, on/off, threshold, grace and patience.

Defaults come from the seeds: vanishing gradients below 1e-7 and exploding above 100
(seed 000's gradient monitor), chance-level AUC at 0.5 ± 0.03, prototype collapse at
mean pairwise cosine 0.8 (seed 000), prediction collapse at pred_mean 0.01 (seed 004).
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class RuleConfig:
    """One rule's settings.

    Attributes:
        enabled: turn the rule off with false.
        threshold: the rule's limit (meaning per rule).
        grace: epochs (or, for step rules, optimiser steps) before the rule may fire.
        patience: consecutive epochs (or sampled steps) the condition must hold.
        fatal: stop the run when it fires (else only warn).
    """

    enabled: bool = True
    threshold: float = 0.0
    grace: int = 0
    patience: int = 1
    fatal: bool = True


@dataclass(frozen=True)
class HealthConfig:
    """Every rule of the monitor (each a :class:`RuleConfig`).

    Attributes:
        enabled: false turns the whole monitor off.
        export_metrics: false keeps the monitor but stops the ``medsight_*`` Ray metrics.
    """

    enabled: bool = True
    export_metrics: bool = True
    non_finite: RuleConfig = RuleConfig(threshold=0.0, patience=1)
    exploding_gradients: RuleConfig = RuleConfig(threshold=100.0, patience=3)
    vanishing_gradients: RuleConfig = RuleConfig(threshold=1e-7, patience=20)
    chance_metric: RuleConfig = RuleConfig(threshold=0.03, grace=2, patience=1)
    diverging_loss: RuleConfig = RuleConfig(threshold=0.25, grace=1, patience=1)
    not_learning: RuleConfig = RuleConfig(threshold=0.05, grace=2, patience=1)
    loss_falls_metric_flat: RuleConfig = RuleConfig(threshold=0.2, grace=2, patience=1)
    class_collapse: RuleConfig = RuleConfig(threshold=0.9, grace=2, patience=2)
    prediction_collapse: RuleConfig = RuleConfig(threshold=0.01, grace=1, patience=2)
    prototype_collapse: RuleConfig = RuleConfig(threshold=0.8, grace=0, patience=1)
    inverted_localisation: RuleConfig = RuleConfig(threshold=1.0, grace=1, patience=1)
