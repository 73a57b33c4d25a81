"""Health monitor settings: per rule, on/off, its limits (each a named setting with its
unit), grace, patience and whether it stops the run.

Every number a rule compares against is a field here, documented with its unit, so
``--print-config`` lists it and ``--set health.<rule>.<name>=...`` changes it; no rule
reads a module constant. Defaults come from the seeds: vanishing gradients below 1e-7 and
exploding above 100 (seed 000's gradient monitor), prototype collapse at mean pairwise
cosine 0.8 (seed 000). Rules that read the data's scale read it relative to the data:
class shares against the true shares, losses against the loss at the start, metrics
against their chance level on the split.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class RuleConfig:
    """One rule's settings.

    Attributes:
        enabled: turn the rule off with false.
        threshold: the rule's limit (its unit is given per rule).
        grace: epochs (for step rules, optimiser steps) before the rule may fire.
        patience: consecutive epochs (for step rules, steps) the condition must hold.
        fatal: stop the run when it fires (else only warn).
        min_steps: optimiser steps the run must have taken before an epoch rule may
            fire: on a tiny dataset an epoch is a handful of steps, too few to call a
            run stalled.
    """

    enabled: bool = True
    threshold: float = 0.0
    grace: int = 0
    patience: int = 1
    fatal: bool = True
    min_steps: int = 0

    def patience_for(self, evidence: dict[str, Any]) -> int:
        """Consecutive epochs a finding of an epoch rule with this ``evidence`` must
        hold before the rule fires: ``patience``, unless the evidence itself is
        conclusive (a rule's config says when). Step rules count their own streaks."""
        return self.patience

    def epochs_needed(self) -> int:
        """Judged epochs (past any warm-up) an epoch rule needs before it can fire at
        all: its grace, then its patience. A run shorter than this was not judged by
        the rule."""
        return self.grace + self.patience


@dataclass(frozen=True)
class NonFiniteConfig(RuleConfig):
    """``non_finite``: the loss or the gradient norm is NaN or infinite.

    Attributes:
        threshold: unused (a NaN or Inf has no degree).
    """


@dataclass(frozen=True)
class LossScaleCollapseConfig(RuleConfig):
    """``loss_scale_collapse``: float16 mixed precision's dynamic loss scale collapsed
    ("reducing loss scale to 0"): every step overflows whatever the scale.

    GradScaler skipping a step is routine (it starts at 2**16, halves after an
    overflow, doubles after 2,000 clean steps and overflows again); only a scale that
    keeps falling is a pathology. Judged on skipped steps alone.

    Attributes:
        threshold: the loss scale (a multiplier, 2**16 at the start) below which the
            rule fires: below 1 the scaler shrinks the gradients it was meant to keep
            out of float16's underflow.
        patience: consecutive skipped steps after which it fires whatever the scale.
    """

    threshold: float = 1.0
    patience: int = 50


@dataclass(frozen=True)
class ExplodingConfig(RuleConfig):
    """``exploding_gradients``: gradient norms that grew far beyond the run's own scale.

    Attributes:
        threshold: total gradient norm (L2, before clipping) above which a step counts.
        growth: multiple of the run's starting norm (the smallest of its first
            ``baseline_steps`` steps) that a step's norm must also exceed: gradients
            large from the first step (a low contrastive temperature, heavy class
            weights) are the loss's scale, not an explosion.
        baseline_steps: optimiser steps whose smallest norm is the starting scale.
        grace: optimiser steps before the rule may fire.
        patience: consecutive steps above both limits.
    """

    threshold: float = 100.0
    growth: float = 10.0
    baseline_steps: int = 5
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
    """``chance_metric``: the primary metric sits at its chance level, the score of a
    model with no skill on this split (AUC 0.5; the macro F1 of the best constant class;
    the Dice of the better trivial mask; 1 / K for prototype retrieval).

    Attributes:
        threshold: skill, (metric − chance) / (1 − chance), at or below which the run is
            at chance (a fraction of the way from chance to perfect: 0.06 = AUC 0.53).
        grace: epochs before the rule may fire.
        min_rise: rise of the primary metric over the last epoch (its units) at or above
            which the run is climbing out of chance and the rule waits (measured: weak-
            signal segmentation, Dice 0.03 -> 0.12 at epoch 3 below the trivial mask's
            0.22, then learning).
        ranked_auc: macro AUC (where a stage reports one beside a thresholded primary
            metric, as grading does) at or above which the model has learned to rank the
            images by class, so a primary metric at chance is its output biases leaning
            onto one class (``class_collapse``'s case), not a model that learned nothing.
        ranking_se: chance-level standard errors of the macro AUC (``auc_se``, where
            reported) within which of 0.5 the ranking is at chance (2 = about 95 % of
            the AUCs a model with no skill scores on this split). A ranking at chance in
            every epoch is at chance whatever a thresholded primary metric says
            (measured: a grading trial at AUC 0.49-0.53, SE 0.043, with macro F1
            0.18-0.26 above the constant predictor's 0.15).
    """

    threshold: float = 0.06
    grace: int = 2
    min_rise: float = 0.02
    min_steps: int = 30
    ranked_auc: float = 0.85
    ranking_se: float = 2.0


@dataclass(frozen=True)
class OutputsIgnoreInputConfig(RuleConfig):
    """``outputs_ignore_input``: the model's answer cannot depend on the image, because
    the images are all the same or because the untrained model already gave every image
    the same answer. No config change cures it: the advice is to look at the inputs.

    Attributes:
        threshold: spread of the validation images (``input_spread``: the standard
            deviation across images of fixed random projections of their pixels, over
            their root mean square) below which the images are the same pixels. A ratio
            that does not depend on the pixels' scale: 0 for identical images, near 1 for
            natural ones (measured: 0.84 on real handwritten digits, raw; 0.99
            normalised), 0.012 for one gray image under noise of a thousandth.
        output_spread: largest standard deviation across images of any output's
            probability (``score_spread``) below which the outputs are identical; it must
            hold before training (``health.baseline_eval``) and now.
        grace: epochs before the rule may fire (0: from the first epoch).
    """

    threshold: float = 1e-3
    output_spread: float = 1e-4


@dataclass(frozen=True)
class OversizedUpdatesConfig(RuleConfig):
    """``oversized_updates``: each optimiser step moves the trainable weights by a large
    part of their own norm (``train/update_ratio``), so nothing a step learns survives
    the next. Adam-type optimisers normalise the gradient, so a learning rate far too
    high shows here, not in the gradient norm.

    Attributes:
        threshold: weight change per step, relative to the weights' norm, above which
            the updates overwrite the weights (measured on 32 px synthetic stages:
            healthy defaults 0.012-0.022 at epoch 1 and less later; lr 10x the grading
            default 0.19, and it recovered; lr 0.1 0.66 with F1 at chance; the demo's
            lr 1.0 2.8-4.5).
        grace: epochs before the rule may fire (0: from the first epoch).
    """

    threshold: float = 0.5
    grace: int = 0


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


@dataclass(frozen=True)
class DivergingConfig(RuleConfig):
    """``diverging_loss``.

    Attributes:
        threshold: rise of the epoch's train loss over its lowest epoch so far, as a
            share of the first epoch's loss (0.25 = a quarter of the starting loss).
        grace: epochs before the rule may fire.
    """

    threshold: float = 0.25
    grace: int = 1


@dataclass(frozen=True)
class UnmixedBatchesConfig(RuleConfig):
    """``unmixed_batches``.

    Attributes:
        threshold: mean label entropy of the training batches over that of batches
            drawn at random from the train split at the same batch size, below which
            batches do not mix the classes (1 = as mixed as a shuffled split, 0 = one
            class per batch).
    """

    threshold: float = 0.5


@dataclass(frozen=True)
class NotLearningConfig(RuleConfig):
    """``not_learning``.

    Attributes:
        threshold: change of the train loss since epoch 1, relative, within which it
            counts as flat (0.05 = ± 5 %).
        grace: epochs before the rule may fire.
        metric_gain: rise of the primary metric since epoch 1 that counts as learning
            (the metric's units).
        max_update: the run's largest epoch weight change per step
            (``train/update_ratio``, relative) at or above which the optimiser moves
            the weights and a flat run is slow, not stalled by a learning rate too low
            (measured: seed 001's stage-1 rates 1.7e-5; healthy stages 1.9e-3 to 0.022;
            a slow but healthy stage 3 at 0.022 used to be stopped here).
        start_skill: skill, (metric − chance) / (1 − chance), of the untrained model
            (``health.baseline_eval``) above which the run is fine-tuning a model that
            already knows the task and is never judged stalled: a randomly initialised
            network starts near 0 (its ranking is whatever random features give), a
            pretrained backbone far above (the same bar as ``overfitting.min_skill``,
            the skill of a model that has learned something).
    """

    threshold: float = 0.05
    grace: int = 2
    metric_gain: float = 0.02
    max_update: float = 2e-4
    min_steps: int = 30
    start_skill: float = 0.25


@dataclass(frozen=True)
class LossFallsMetricFlatConfig(RuleConfig):
    """``loss_falls_metric_flat``.

    Attributes:
        threshold: fall of the train loss since epoch 1, relative, above which the loss
            counts as learning (0.2 = 20 % down).
        grace: epochs before the rule may fire.
        skill_band: skill, (metric − chance) / (1 − chance), at or below which the
            metric counts as flat at chance here (0.1 = AUC 0.55).
        min_rise: rise of the primary metric over the last epoch (its units) at or above
            which the metric is not flat.
        ranked_auc: macro AUC (where reported beside a thresholded primary metric) at or
            above which the falling loss has taught the model to rank the images by
            class, so the flat metric is its output biases, not a loss that optimises
            something else.
    """

    threshold: float = 0.2
    grace: int = 2
    skill_band: float = 0.1
    min_rise: float = 0.02
    min_steps: int = 30
    ranked_auc: float = 0.85


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
            epoch (its units): overfitting costs the validation metric, while a
            validation loss that climbs with the metric held is over-confidence, which
            the best checkpoint does not suffer (the zoo's measure of the harm: F1 0.05
            below its best; the memorised runs fell 0.09-0.12).
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
        ranked_auc: an epoch whose macro AUC is at least this does not count toward a
            collapse onto one class: the model ranks the images by class, and only its
            output biases favour one class (a prior shift, which re-weighted recipes
            show for an epoch or two and training corrects). Measured: recipes that
            recovered to F1 0.66-0.80 leaned 79-100 % onto one class at AUC 0.92-0.99;
            seed 003's collapse held 93-100 % at AUC 0.68-0.73.
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
    ranked_auc: float = 0.85
    min_update: float = 2e-4

    def epochs_needed(self) -> int:
        """The grace, then ``collapse_epochs`` collapsed epochs."""
        return self.grace + self.collapse_epochs


@dataclass(frozen=True)
class PredictionCollapseConfig(RuleConfig):
    """``prediction_collapse``: segmentation predicts (almost) no foreground where the
    truth has it, while the training loss says all is well (seed 004: loss -> 0 with
    all-zero predictions). A model that has not learned yet still has its starting
    loss and stays quiet.

    Attributes:
        threshold: predicted foreground share over the true foreground share below which
            the model predicts nothing (0.25 = a quarter).
        loss_fraction: train loss over the loss at the start (``train/loss_start``, the
            untrained model's first batches) below which predicting nothing has become
            cheap (0.5 = halved).
        growth: factor by which the predicted share grew over the last epoch at or
            above which the model is still learning to predict foreground (measured:
            weak-signal segmentation 0.0016 -> 0.008; seed 004's collapse 0.0009 -> 0.0001).
        settled_fraction: train loss over the loss at the start below which the loss
            has settled and no longer grows the foreground: growth or a new best then
            no longer excuses the collapse (0.1 = an order of magnitude down; measured:
            seed 004's recipe at 0.02-0.04, a healthy weak-signal run growing its
            foreground 3x an epoch at 0.20).
        grace: epochs before the rule may fire.
        patience: consecutive epochs the collapse must hold while the loss has not
            settled.
        settled_patience: consecutive epochs the collapse must hold once the loss has
            settled: one epoch is conclusive, as nothing is left to grow the foreground,
            so a collapse present from epoch 1 is named at epoch 2, inside ASHA's grace.
    """

    threshold: float = 0.25
    loss_fraction: float = 0.5
    growth: float = 2.0
    settled_fraction: float = 0.1
    grace: int = 1
    patience: int = 2
    settled_patience: int = 1

    def epochs_needed(self) -> int:
        """The grace, then a collapse once the loss settled (``settled_patience``)."""
        return self.grace + min(self.patience, self.settled_patience)

    def patience_for(self, evidence: dict[str, Any]) -> int:
        """``settled_patience`` when the evidence's train loss is below
        ``settled_fraction`` × its start, else ``patience``."""
        settled = evidence["train_loss"] < self.settled_fraction * evidence["train_loss_start"]
        return self.settled_patience if settled else self.patience


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
        min_update: the run's largest epoch weight change per step (``train/update_ratio``)
            below which training has not moved the CAMs from their random start; the
            same scale as ``not_learning.max_update`` (measured: seed 001's stage-1
            rates 1.5e-6 to 2e-5 a step; the sign-flipped box loss 0.011-0.014).
    """

    threshold: float = 1.0
    grace: int = 1
    alive_energy: float = 0.05
    min_update: float = 2e-4


@dataclass(frozen=True)
class HealthConfig:
    """Every rule of the monitor (each with its own settings class).

    Attributes:
        enabled: false turns the whole monitor off.
        export_metrics: false keeps the monitor but stops the ``medsight_*`` Ray metrics.
        baseline_eval: validate the untrained model once, before the first step (one
            validation pass a run): the rules compare the run with its own start (its
            AUC, the spread of its outputs, its skill) rather than with a fixed chance
            level, and the record keeps it as ``start``.
    """

    enabled: bool = True
    export_metrics: bool = True
    baseline_eval: bool = True
    non_finite: NonFiniteConfig = NonFiniteConfig()
    loss_scale_collapse: LossScaleCollapseConfig = LossScaleCollapseConfig()
    exploding_gradients: ExplodingConfig = ExplodingConfig()
    vanishing_gradients: VanishingConfig = VanishingConfig()
    outputs_ignore_input: OutputsIgnoreInputConfig = OutputsIgnoreInputConfig()
    oversized_updates: OversizedUpdatesConfig = OversizedUpdatesConfig()
    dead_outputs: DeadOutputsConfig = DeadOutputsConfig()
    chance_metric: ChanceConfig = ChanceConfig()
    unmixed_batches: UnmixedBatchesConfig = UnmixedBatchesConfig()
    diverging_loss: DivergingConfig = DivergingConfig()
    not_learning: NotLearningConfig = NotLearningConfig()
    loss_falls_metric_flat: LossFallsMetricFlatConfig = LossFallsMetricFlatConfig()
    overfitting: OverfittingConfig = OverfittingConfig()
    class_collapse: ClassCollapseConfig = ClassCollapseConfig()
    prediction_collapse: PredictionCollapseConfig = PredictionCollapseConfig()
    prototype_collapse: PrototypeCollapseConfig = PrototypeCollapseConfig()
    inverted_localisation: InvertedLocalisationConfig = InvertedLocalisationConfig()
