"""Stage 1 concept loss: α·BCE(pos_weight) + β·localisation."""

from __future__ import annotations

import math

import pytest
import torch

from medsight_ray.losses.bbox import bbox_localisation_loss
from medsight_ray.losses.concept import ConceptLossConfig, concept_loss, pos_weight_from_counts


def test_pos_weight_is_negatives_over_positives_capped() -> None:
    w = pos_weight_from_counts(torch.tensor([50, 10, 1, 0]), total=100, cap=10.0)
    assert w.tolist() == pytest.approx([1.0, 9.0, 10.0, 1.0])


def test_total_is_alpha_bce_plus_beta_loc_hand_computed() -> None:
    cams = torch.zeros(1, 2, 2, 2)
    cams[0, 0, 0, 0] = math.log(3.0)  # concept 0: max logit log 3 -> p = 0.75
    out = {"cams": cams, "concept_logits": cams.amax((-2, -1))}
    concepts = torch.tensor([[1.0, 0.0]])
    boxes = torch.tensor([[[0, 0.0, 0.0, 0.5, 0.5]]])
    pw = torch.tensor([2.0, 1.0])
    parts = concept_loss(out, concepts, boxes, ConceptLossConfig(alpha=0.5, beta=2.0), pos_weight=pw)
    bce = (2.0 * -math.log(0.75) + -math.log(0.5)) / 2
    assert parts["cls"].item() == pytest.approx(bce)
    assert parts["loc"].item() == pytest.approx(bbox_localisation_loss(cams, boxes).item())
    assert parts["loss"].item() == pytest.approx(0.5 * bce + 2.0 * parts["loc"].item())


def test_a_step_lowers_the_total() -> None:
    torch.manual_seed(0)
    cams = torch.randn(2, 3, 4, 4, requires_grad=True)
    concepts = torch.tensor([[1.0, 0, 0], [0, 1, 1]])
    boxes = torch.tensor([[[0, 0.1, 0.1, 0.5, 0.5], [-1, 0, 0, 0, 0]], [[1, 0.5, 0.5, 1, 1], [2, 0, 0, 0.4, 0.4]]])
    cfg = ConceptLossConfig()

    def total(c: torch.Tensor) -> torch.Tensor:
        return concept_loss({"cams": c, "concept_logits": c.amax((-2, -1))}, concepts, boxes, cfg)["loss"]

    value = total(cams)
    (grad,) = torch.autograd.grad(value, cams)
    assert total(cams - 0.5 * grad) < value
