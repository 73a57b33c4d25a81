"""The fit loop measures how well training batches mix the classes (``train/label_mix``),
and ``unmixed_batches`` names batches of one class at once, relative to the split."""

from __future__ import annotations

import math

import torch
from torch import nn

from medsight_ray.fit.loop import entropy, random_batch_entropy
from medsight_ray.health.config import HealthConfig
from medsight_ray.health.monitor import HealthMonitor
from medsight_ray.stages.registry import get_stage
from tests.unit.fit.test_accumulation import _Shard, _trainer

COUNTS = [40, 13, 33, 13]  # the cataract data's 41/13/33/13 %


def _label_batches(grouped: bool) -> list[dict[str, torch.Tensor]]:
    labels = torch.cat([torch.full((n,), c) for c, n in enumerate(COUNTS)])
    if not grouped:
        labels = labels[torch.randperm(len(labels), generator=torch.Generator().manual_seed(0))]
    g = torch.Generator().manual_seed(1)
    return [{"image": torch.randn(len(chunk), 3, generator=g), "y": torch.randn(len(chunk), 1, generator=g),
             "label": chunk} for chunk in labels.split(16)]


def _label_mix(grouped: bool) -> float:
    torch.manual_seed(0)
    trainer = _trainer(nn.Linear(3, 1), accumulate=1)
    trainer.split_entropy = entropy(COUNTS)
    return trainer.train_epoch(_Shard(_label_batches(grouped)))["train/label_mix"]


def test_entropy_of_a_histogram() -> None:
    assert entropy([5, 0, 0]) == 0.0 and math.isclose(entropy([1, 1]), math.log(2))


def test_grouped_batches_mix_little_and_shuffled_ones_as_the_split() -> None:
    """Batches of 16 from a split stored class after class hold one class, two at a
    boundary; from a shuffled split, about the split's mix (a batch of 16 draws a little
    less entropy than the whole split holds). The rule's default sits between."""
    grouped, mixed = _label_mix(grouped=True), _label_mix(grouped=False)
    assert grouped < 0.3, grouped
    assert 0.8 < mixed <= 1.05, mixed
    assert grouped < HealthConfig().unmixed_batches.threshold < mixed


def test_unmixed_batches_stop_the_run_at_the_first_epoch() -> None:
    """Measured on the real digits stored grouped by class: batch label mix 0.33, F1
    0.12 -> 0.42 in 4 epochs; with the rows shuffled the same recipe is healthy. Every
    epoch on such batches is wasted, so the rule stops the run with the cure."""
    monitor = HealthMonitor(HealthConfig(), "grading/grading", "f1_macro", get_stage("grading").config_cls())
    (d,) = monitor.on_epoch(0, {"train/loss": 1.0, "train/label_mix": 0.12}, {"f1_macro": 0.3})
    # The remedy words come from the changes: a buffer that mixes, then the data itself.
    assert d.remedies[0] == "mix the batches with a larger shuffle buffer (fit.shuffle_buffer 256 -> 4096)"
    assert (d.rule, d.severity, d.epoch) == ("unmixed_batches", "fatal", 1)
    assert "random order" in " ".join(d.remedies) and monitor.should_stop()
    quiet = HealthMonitor(HealthConfig(), "grading/grading", "f1_macro")
    assert quiet.on_epoch(0, {"train/loss": 1.0, "train/label_mix": 0.93}, {"f1_macro": 0.3}) == []


def test_the_baseline_is_a_random_batch_of_the_same_size() -> None:
    """Seed 003's batch of 2 can hold 2 of 4 classes at most: its batches are as mixed
    as random batches of 2, not 'unmixed' (measured: unmixed_batches used to warn at
    epoch 1 with the advice to reorder rows that were already in random order)."""
    assert random_batch_entropy(COUNTS, 2) < 0.6 * entropy(COUNTS)
    # Hand-computed for two equal classes and batches of 2: half the batches hold both
    # classes (entropy ln 2), half one (0).
    assert math.isclose(random_batch_entropy([1, 1], 2, draws=20000), math.log(2) / 2, rel_tol=0.03)
    assert random_batch_entropy(COUNTS, 256) > 0.98 * entropy(COUNTS)
    torch.manual_seed(0)
    trainer = _trainer(nn.Linear(3, 1), accumulate=1)
    trainer.split_entropy = random_batch_entropy(COUNTS, 2)
    labels = torch.cat([torch.full((n,), c) for c, n in enumerate(COUNTS)])
    labels = labels[torch.randperm(len(labels), generator=torch.Generator().manual_seed(0))]
    batches = [{"image": torch.randn(len(c), 3), "y": torch.randn(len(c), 1), "label": c} for c in labels.split(2)]
    mix = trainer.train_epoch(_Shard(batches))["train/label_mix"]
    assert 0.8 < mix < 1.2
