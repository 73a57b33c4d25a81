"""Bbox localisation loss: values, the direction of its gradient, and the seeds' hinge."""

from __future__ import annotations

import math
from collections.abc import Callable

import pytest
import torch

from medsight_ray.data.boxes import box_masks
from medsight_ray.losses.bbox import bbox_localisation_loss

LEFT_COLUMN = torch.tensor([[[0, 0.0, 0.0, 0.5, 1.0]]])  # concept 0, x in [0, .5]: left column of a 2x2 grid


def _cam(values: list[list[float]]) -> torch.Tensor:
    return torch.tensor(values).view(1, 1, 2, 2)


def test_hand_computed_values() -> None:
    flat = _cam([[0.0, 0.0], [0.0, 0.0]])
    assert bbox_localisation_loss(flat, LEFT_COLUMN).item() == pytest.approx(0.25 + 0.25)
    assert bbox_localisation_loss(flat, LEFT_COLUMN, "hinge").item() == pytest.approx(0.0)
    wrong = _cam([[-1.0, 2.0], [-1.0, 2.0]])
    s = lambda x: 1 / (1 + math.exp(-x))  # noqa: E731
    assert bbox_localisation_loss(wrong, LEFT_COLUMN).item() == pytest.approx((1 - s(-1)) ** 2 + s(2) ** 2)
    assert bbox_localisation_loss(wrong, LEFT_COLUMN, "hinge").item() == pytest.approx(1.0 + 2.0)
    assert bbox_localisation_loss(wrong, LEFT_COLUMN, "hinge", margin=0.5).item() == pytest.approx(1.5 + 2.5)


def test_perfect_is_minimal_and_worse_is_more() -> None:
    perfect = _cam([[20.0, -20.0], [20.0, -20.0]])
    assert bbox_localisation_loss(perfect, LEFT_COLUMN).item() < 1e-8
    assert bbox_localisation_loss(perfect, LEFT_COLUMN, "hinge").item() == 0.0
    mid, worse = _cam([[1.0, -1.0], [1.0, -1.0]]), _cam([[-1.0, 1.0], [-1.0, 1.0]])
    for mode in ("mse", "hinge"):
        assert bbox_localisation_loss(worse, LEFT_COLUMN, mode) > bbox_localisation_loss(mid, LEFT_COLUMN, mode)


Loss = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


def _loss(mode: str | Loss) -> Loss:
    return mode if callable(mode) else lambda cams, boxes: bbox_localisation_loss(cams, boxes, mode)


def _step(mode: str | Loss, cams: torch.Tensor, boxes: torch.Tensor,
          lr: float = 0.5) -> tuple[torch.Tensor, float, float]:
    cams = cams.clone().requires_grad_(True)
    loss = _loss(mode)(cams, boxes)
    loss.backward()
    with torch.no_grad():
        after = cams - lr * cams.grad
    return after, loss.item(), _loss(mode)(after, boxes).item()


def _raises_inside_lowers_outside(mode: str | Loss) -> bool:
    torch.manual_seed(0)
    cams = torch.randn(2, 3, 8, 8) * 0.1
    boxes = torch.tensor([[[1, 0.1, 0.1, 0.45, 0.5], [-1, 0, 0, 0, 0]],
                          [[2, 0.5, 0.5, 0.9, 0.9], [0, 0.0, 0.6, 0.3, 1.0]]])
    inside, outside, valid = box_masks(boxes, 8, 8)
    after, before_loss, after_loss = _step(mode, cams, boxes)
    ok = after_loss < before_loss
    for b, n in valid.nonzero().tolist():
        k = int(boxes[b, n, 0])
        delta = after[b, k] - cams[b, k]
        ok &= bool(delta[inside[b, n]].mean() > 0) and bool(delta[outside[b, n]].mean() < 0)
    return ok


def test_a_step_raises_the_cam_inside_the_box_and_lowers_it_outside() -> None:
    assert _raises_inside_lowers_outside("mse")


def test_the_direction_test_catches_a_sign_flip() -> None:
    # The pathology zoo's sign-flipped loss: mse on negated CAMs rewards CAM outside the box.
    assert not _raises_inside_lowers_outside(lambda cams, boxes: bbox_localisation_loss(-cams, boxes))


def test_the_seeds_original_hinge_is_not_backwards() -> None:
    """Seed 001 called relu(-cam·in) + relu(cam·out) backwards. Measured: it is not."""
    assert _raises_inside_lowers_outside("hinge")
    # 200 steps from a random start: CAM inside ends positive, outside negative.
    torch.manual_seed(1)
    cams = (torch.randn(1, 1, 8, 8) * 0.5).requires_grad_(True)
    boxes = torch.tensor([[[0, 0.25, 0.25, 0.75, 0.75]]])
    inside, outside, _ = box_masks(boxes, 8, 8)
    opt = torch.optim.SGD([cams], lr=0.5)
    for _ in range(200):
        opt.zero_grad()
        bbox_localisation_loss(cams, boxes, "hinge").backward()
        opt.step()
    assert cams[0, 0][inside[0, 0]].min() >= 0 and cams[0, 0][outside[0, 0]].max() <= 0


def test_the_zero_margin_hinge_stops_pushing_once_signs_are_right() -> None:
    # Barely right (inside +0.01, outside -0.01): zero loss and zero gradient, no separation.
    cams = _cam([[0.01, -0.01], [0.01, -0.01]]).requires_grad_(True)
    loss = bbox_localisation_loss(cams, LEFT_COLUMN, "hinge")
    loss.backward()
    assert loss.item() == 0.0 and cams.grad.abs().sum() == 0
    # The corrected (mse) form keeps separating the same map, and a margin restores the push.
    cams2 = cams.detach().clone().requires_grad_(True)
    bbox_localisation_loss(cams2, LEFT_COLUMN, "mse").backward()
    assert cams2.grad[0, 0, :, 0].lt(0).all() and cams2.grad[0, 0, :, 1].gt(0).all()
    cams3 = cams.detach().clone().requires_grad_(True)
    bbox_localisation_loss(cams3, LEFT_COLUMN, "hinge", margin=1.0).backward()
    assert cams3.grad.abs().sum() > 0


def test_other_boxes_of_the_same_concept_are_not_outside() -> None:
    boxes = torch.tensor([[[0, 0.0, 0.0, 0.5, 0.5], [0, 0.5, 0.5, 1.0, 1.0], [1, 0.5, 0.0, 1.0, 0.5]]])
    inside, outside, _ = box_masks(boxes, 2, 2)
    assert inside[0, 0].tolist() == [[True, False], [False, False]]
    # Box 0's outside excludes box 1 (same concept) but not box 2 (other concept).
    assert outside[0, 0].tolist() == [[False, True], [True, False]]


def test_no_boxes_gives_zero_with_a_graph() -> None:
    cams = torch.randn(2, 3, 4, 4, requires_grad=True)
    loss = bbox_localisation_loss(cams, torch.full((2, 1, 5), -1.0))
    assert loss.item() == 0.0 and loss.requires_grad
