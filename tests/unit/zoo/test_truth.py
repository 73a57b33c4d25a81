"""The zoo's ground truths: each holds on its pathology and not on a healthy history."""

from __future__ import annotations

from medsight_ray.zoo.entries import onset, select_entries


def _history(objective: list[float], train: list[float]) -> list[dict[str, float]]:
    return [{"objective": o, "train/loss": t} for o, t in zip(objective, train)]


def test_overfitting_truth_needs_the_metric_off_its_best_while_the_train_set_is_memorised() -> None:
    (entry,) = select_entries(("overfitting_noisy_labels",))
    # Measured shape: F1 peaks at 0.645 (train loss 0.96), then falls to ~0.53 while the
    # train loss goes under 0.48: onset when 3 epochs running stand 0.05 below the best.
    memorised = _history([0.3, 0.5, 0.645, 0.62, 0.57, 0.55, 0.53, 0.52],
                         [1.3, 1.1, 0.96, 0.7, 0.45, 0.3, 0.2, 0.1])
    assert onset(entry, memorised) == 7
    # Still learning: the metric at its best at the end.
    assert onset(entry, _history([0.3, 0.5, 0.6, 0.62, 0.64, 0.66], [1.3, 1.0, 0.7, 0.4, 0.2, 0.1])) is None
    # Worse on validation, but the train loss never fell to half: not memorisation.
    assert onset(entry, _history([0.3, 0.6, 0.5, 0.5, 0.5, 0.5], [1.3, 1.0, 0.9, 0.8, 0.8, 0.7])) is None
    # A dip that recovers is not overfitting: the last 3 epochs must all stand below.
    assert onset(entry, _history([0.3, 0.6, 0.5, 0.5, 0.59, 0.58], [1.3, 1.0, 0.4, 0.3, 0.2, 0.1])) is None


def test_a_run_that_heals_itself_is_not_a_pathology_and_onset_is_where_it_held_for_good() -> None:
    """Measured: BCE on 95 % empty masks, monitor off, one seed: Dice 0, 0, then 0.35 and
    0.61. It holds the truth at epochs 1-2 and heals; another seed's Dice 0, 0.149,
    0.02, 0.011 collapses for good from epoch 3."""
    (entry,) = select_entries(("bce_on_empty_masks",))

    def run(dice: tuple[float, ...], loss: tuple[float, ...]) -> list[dict[str, float]]:
        return [{"val/dice": d, "train/loss": x} for d, x in zip(dice, loss)]

    falling = (0.45, 0.068, 0.021, 0.016)  # measured, data seed 0 (start 0.51)
    assert onset(entry, run((0.0, 0.0, 0.354, 0.614), falling)) is None
    assert onset(entry, run((0.0, 0.149, 0.02, 0.011), falling)) == 3
    # Nothing predicted from the start, but epoch 1 is every net's untrained start (the
    # healthy real nuclei: Dice 0.0 at epoch 1): the collapse begins where the loss has
    # fallen to half the first epoch's while nothing is predicted.
    assert onset(entry, run((0.0, 0.0, 0.0, 0.0), falling)) == 2
    # Nothing predicted, and the loss never fell: an untrained net, not a collapse.
    assert onset(entry, run((0.0, 0.0, 0.0, 0.0), (0.45, 0.4, 0.38, 0.36))) is None
    assert onset(entry, []) is None


def test_seed003s_truth_is_accuracy_below_the_majority_class_at_the_end() -> None:
    """Measured, monitor off: the majority class (36 of 81) never predicted, accuracy
    0.17 -> 0.38, macro F1 0.07 -> 0.29 (above the best constant class's 0.15 from
    epoch 3 on): broken for good from epoch 1, though F1 beat chance."""
    (entry,) = select_entries(("seed003_broken_recipe",))
    support = {"No Cataract": 36, "Immature Cataract": 14, "Mature Cataract": 20, "IOL Inserted": 11}
    broken = [{"val/accuracy": a, "details": {"support": support}} for a in (0.173, 0.136, 0.21, 0.333, 0.321, 0.383)]
    assert onset(entry, broken) == 2
    healed = broken[:4] + [{"val/accuracy": a, "details": {"support": support}} for a in (0.52, 0.61)]
    assert onset(entry, healed) is None
