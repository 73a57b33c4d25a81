"""Segmentation losses: values, empty masks, unknown masks, and the factory."""

from __future__ import annotations

import math

import pytest
import torch

from medsight_ray.errors import ConfigError
from medsight_ray.losses.overlap import dice_loss, iou_loss, tversky_loss
from medsight_ray.losses.pixel import bce_loss, binary_focal_loss
from medsight_ray.losses.segmentation import LOSSES, build_segmentation_loss

TARGET = torch.tensor([1.0, 1.0, 0.0, 0.0]).view(1, 1, 2, 2)
BIG = 30.0


def _logits(probs: list[float]) -> torch.Tensor:
    p = torch.tensor(probs).clamp(1e-7, 1 - 1e-7)
    return torch.log(p / (1 - p)).view(1, 1, 2, 2)


def test_hand_computed_overlap_values() -> None:
    half = _logits([0.5, 0.5, 0.5, 0.5])  # TP = 1, FP = 1, FN = 1
    assert dice_loss(half, TARGET).item() == pytest.approx(1 - 1 / (1 + 0.5 + 0.5))
    assert iou_loss(half, TARGET).item() == pytest.approx(1 - 1 / 3)
    assert tversky_loss(half, TARGET, alpha=0.3, beta=0.7).item() == pytest.approx(1 - 1 / 2)
    assert bce_loss(half, TARGET).item() == pytest.approx(math.log(2))
    assert binary_focal_loss(half, TARGET, gamma=2.0).item() == pytest.approx(0.25 * math.log(2))


@pytest.mark.parametrize("name", sorted(LOSSES))
def test_perfect_worse_and_a_step(name: str) -> None:
    loss = build_segmentation_loss(name)
    perfect = (TARGET * 2 - 1) * BIG
    assert loss(perfect, TARGET, None).item() < 1e-6
    assert loss(-perfect, TARGET, None) > loss(perfect * 0, TARGET, None)
    logits = torch.randn(3, 1, 8, 8, requires_grad=True)
    target = (torch.rand(3, 1, 8, 8) > 0.6).float()
    value = loss(logits, target, torch.ones(3))
    (grad,) = torch.autograd.grad(value, logits)
    assert loss(logits - 20.0 * grad, target, torch.ones(3)) < value


def test_empty_masks_do_not_reward_predicting_nothing() -> None:
    empty = torch.zeros(1, 1, 2, 2)
    nothing = torch.full((1, 1, 2, 2), -BIG, requires_grad=True)
    # All-empty batch: Dice/Tversky/IoU are undefined, contribute exactly 0 and no gradient.
    for fn in (dice_loss, iou_loss, tversky_loss):
        value = fn(nothing, empty)
        assert value.item() == 0.0 and torch.autograd.grad(value, nothing)[0].abs().sum() == 0
    # Predicting nothing on a real mask is the worst overlap, whatever empty images share the batch.
    batch_t = torch.cat([TARGET, empty])
    batch_p = torch.full((2, 1, 2, 2), -BIG)
    assert dice_loss(batch_p, batch_t).item() == pytest.approx(1.0)
    # BCE alone stays small for "predict nothing" when most pixels are empty: seed 004's trap.
    mostly_empty = torch.zeros(10, 1, 8, 8)
    mostly_empty[0, 0, :2, :2] = 1
    assert bce_loss(torch.full_like(mostly_empty, -5.0), mostly_empty).item() < 0.1
    assert dice_loss(torch.full_like(mostly_empty, -5.0), mostly_empty).item() > 0.95


def test_unknown_masks_never_count() -> None:
    wrong = _logits([0.01, 0.01, 0.99, 0.99])
    valid = torch.tensor([0.0])
    for name in LOSSES:
        assert build_segmentation_loss(name)(wrong, TARGET, valid).item() == 0.0


def test_combined_is_the_weighted_sum_and_factory_errors_list_names() -> None:
    logits, target = torch.randn(2, 1, 4, 4), (torch.rand(2, 1, 4, 4) > 0.5).float()
    combo = build_segmentation_loss("combined", weights={"bce": 0.4, "dice": 0.6}, dice={})
    expected = 0.4 * bce_loss(logits, target) + 0.6 * dice_loss(logits, target)
    assert combo(logits, target, None).item() == pytest.approx(expected.item())
    tv = build_segmentation_loss("combined", weights={"tversky": 1.0}, tversky={"alpha": 0.3, "beta": 0.7})
    assert tv(logits, target, None).item() == pytest.approx(tversky_loss(logits, target, None, 0.3, 0.7).item())
    with pytest.raises(ConfigError, match="'bce', 'combined', 'dice', 'focal', 'iou', 'tversky'"):
        build_segmentation_loss("lovasz")
    with pytest.raises(ConfigError, match="keywords among \\['alpha', 'beta'\\]"):
        build_segmentation_loss("tversky", gamma=2)
