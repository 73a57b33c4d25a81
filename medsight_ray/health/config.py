"""Health monitor settings: per rule, on/off, its limits (each a named setting with its
unit), grace, patience and whether it stops the run.

Every number a rule compares against is a field here, documented with its unit, so
``--print-config`` lists it and ``--set health.<rule>.<name>=...`` changes it; no rule
reads a module constant. Defaults come from the seeds: vanishing gradients below 1e-7 and
exploding above 100 (seed 000's gradient monitor), chance-level AUC at 0.5 ± 0.03,
prototype collapse at mean pairwise cosine 0.8 (seed 000), prediction collapse at
pred_mean 0.01 (seed 004).
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class RuleConfig:
    """One rule's settings.

    Attributes:
        enabled: turn the rule off with false.
        threshold: the rule's limit (its unit is given per rule).
        grace: epochs (for step rules, optimiser steps) before the rule may fire.
        patience: consecutive epochs (for step rules, steps) the condition must hold.
        fatal: stop the run when it fires (else only warn).
    """

    enabled: bool = True
    threshold: float = 0.0
    grace: int = 0
    patience: int = 1
    fatal: bool = True


@dataclass(frozen=True)
class NonFiniteConfig(RuleConfig):
    """``non_finite``: the loss or the gradient norm is NaN or infinite.

    Attributes:
        threshold: unused (a NaN or Inf has no degree).
    """


@dataclass(frozen=True)
class ExplodingConfig(RuleConfig):
    """``exploding_gradients``.

    Attributes:
        threshold: total gradient norm (L2, before clipping) above which a step counts.
        grace: optimiser steps before the rule may fire.
        patience: consecutive steps above the threshold.
    """

    threshold: float = 100.0
    patience: int = 3


@dataclass(frozen=True)
class VanishingConfig(RuleConfig):
    """``vanishing_gradients``.

    Attributes:
        threshold: total gradient norm (L2) below which a step counts.
        grace: optimiser steps before the rule may fire.
        patience: consecutive steps below the threshold.
    """

    threshold: float = 1e-7
    patience: int = 20


@dataclass(frozen=True)
class ChanceConfig(RuleConfig):
    """``chance_metric``.

    Attributes:
        threshold: half-width of the band around AUC 0.5 that counts as chance (AUC units).
        grace: epochs before the rule may fire.
    """

    threshold: float = 0.03
    grace: int = 2


@dataclass(frozen=True)
class DivergingConfig(RuleConfig):
    """``diverging_loss``.

    Attributes:
        threshold: rise of the epoch's train loss over its lowest epoch so far, relative
            (0.25 = 25 % above).
        grace: epochs before the rule may fire.
    """

    threshold: float = 0.25
    grace: int = 1


@dataclass(frozen=True)
class UnmixedBatchesConfig(RuleConfig):
    """``unmixed_batches``.

    Attributes:
        threshold: mean label entropy of the training batches over the train split's
            class entropy, below which batches do not mix the classes (1 = as mixed as
            the split, 0 = one class per batch).
        fatal: false: the data's order is reported at once; ``diverging_loss`` stops the
            run if it diverges.
    """

    threshold: float = 0.5
    fatal: bool = False


@dataclass(frozen=True)
class NotLearningConfig(RuleConfig):
    """``not_learning``.

    Attributes:
        threshold: change of the train loss since epoch 1, relative, within which it
            counts as flat (0.05 = ± 5 %).
        grace: epochs before the rule may fire.
        metric_gain: rise of the primary metric since epoch 1 that counts as learning
            (the metric's units).
    """

    threshold: float = 0.05
    grace: int = 2
    metric_gain: float = 0.02


@dataclass(frozen=True)
class LossFallsMetricFlatConfig(RuleConfig):
    """``loss_falls_metric_flat``.

    Attributes:
        threshold: fall of the train loss since epoch 1, relative, above which the loss
            counts as learning (0.2 = 20 % down).
        grace: epochs before the rule may fire.
        auc_band: half-width of the band around AUC 0.5 that counts as chance here (AUC units).
    """

    threshold: float = 0.2
    grace: int = 2
    auc_band: float = 0.05


@dataclass(frozen=True)
class ClassCollapseConfig(RuleConfig):
    """``class_collapse``.

    Attributes:
        threshold: share of the predictions taken by one class (or one label set) that
            counts as a collapse (0.9 = 90 %).
        grace: epochs before the rule may fire.
        patience: consecutive epochs the collapse must hold.
        dead_classes: classes with support and F1 = 0 that count as a collapse (with
            more than two classes; one is how a healthy run looks while it learns a
            13 % minority class).
    """

    threshold: float = 0.9
    grace: int = 2
    patience: int = 2
    dead_classes: int = 2


@dataclass(frozen=True)
class PredictionCollapseConfig(RuleConfig):
    """``prediction_collapse``.

    Attributes:
        threshold: predicted foreground share below which the model predicts nothing
            (a share of pixels).
        grace: epochs before the rule may fire.
        patience: consecutive epochs the collapse must hold.
        target_fraction: fraction of the true foreground share that the predicted share
            must also fall below.
        collapsed_loss: train loss below which predicting nothing has become cheap (the
            loss's units).
    """

    threshold: float = 0.01
    grace: int = 1
    patience: int = 2
    target_fraction: float = 0.25
    collapsed_loss: float = 0.2


@dataclass(frozen=True)
class PrototypeCollapseConfig(RuleConfig):
    """``prototype_collapse``.

    Attributes:
        threshold: mean pairwise cosine of the prototypes (all, or within a concept)
            above which they have collapsed (cosine, -1 to 1).
        grace: epochs before the rule may fire.
    """

    threshold: float = 0.8


@dataclass(frozen=True)
class InvertedLocalisationConfig(RuleConfig):
    """``inverted_localisation``.

    Attributes:
        threshold: CAM energy inside the boxes over the energy outside at or below which
            localisation is inverted (a ratio; 1 = no preference).
        grace: epochs before the rule may fire.
        alive_energy: mean CAM activation outside the boxes below which the CAMs are dead,
            not inverted (sigmoid units, 0 to 1).
    """

    threshold: float = 1.0
    grace: int = 1
    alive_energy: float = 0.05


@dataclass(frozen=True)
class HealthConfig:
    """Every rule of the monitor (each with its own settings class).

    Attributes:
        enabled: false turns the whole monitor off.
        export_metrics: false keeps the monitor but stops the ``medsight_*`` Ray metrics.
    """

    enabled: bool = True
    export_metrics: bool = True
    non_finite: NonFiniteConfig = NonFiniteConfig()
    exploding_gradients: ExplodingConfig = ExplodingConfig()
    vanishing_gradients: VanishingConfig = VanishingConfig()
    chance_metric: ChanceConfig = ChanceConfig()
    unmixed_batches: UnmixedBatchesConfig = UnmixedBatchesConfig()
    diverging_loss: DivergingConfig = DivergingConfig()
    not_learning: NotLearningConfig = NotLearningConfig()
    loss_falls_metric_flat: LossFallsMetricFlatConfig = LossFallsMetricFlatConfig()
    class_collapse: ClassCollapseConfig = ClassCollapseConfig()
    prediction_collapse: PredictionCollapseConfig = PredictionCollapseConfig()
    prototype_collapse: PrototypeCollapseConfig = PrototypeCollapseConfig()
    inverted_localisation: InvertedLocalisationConfig = InvertedLocalisationConfig()
