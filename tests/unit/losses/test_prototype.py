"""Prototype contrastive loss: values and the pull toward the own concept."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from medsight_ray.losses.prototype import prototype_contrastive_loss, prototype_diversity

PROTOS = torch.tensor([[[1.0, 0.0]], [[0.0, 1.0]]])  # K=2, M=1, D=2
ONLY_FIRST = torch.tensor([[1.0, 0.0]])


def test_hand_computed() -> None:
    v = torch.tensor([[[1.0, 0.0], [0.0, 1.0]]])
    assert prototype_contrastive_loss(v, PROTOS, ONLY_FIRST, 1.0).item() == pytest.approx(math.log(1 + math.exp(-1)))
    assert prototype_contrastive_loss(v, PROTOS, ONLY_FIRST, 0.5).item() == pytest.approx(math.log(1 + math.exp(-2)))


def test_perfect_is_minimal_worse_is_more_absent_is_ignored() -> None:
    right = torch.tensor([[[1.0, 0.0], [1.0, 0.0]]])
    wrong = torch.tensor([[[0.0, 1.0], [1.0, 0.0]]])
    assert prototype_contrastive_loss(right, PROTOS, ONLY_FIRST, 0.05).item() < 1e-6
    assert prototype_contrastive_loss(wrong, PROTOS, ONLY_FIRST, 0.5) > prototype_contrastive_loss(
        right, PROTOS, ONLY_FIRST, 0.5)
    # Concept 1 is absent: its (wrong) vector changes nothing.
    assert prototype_contrastive_loss(right, PROTOS, ONLY_FIRST, 0.5) == prototype_contrastive_loss(
        torch.tensor([[[1.0, 0.0], [-1.0, 0.0]]]), PROTOS, ONLY_FIRST, 0.5)
    assert prototype_contrastive_loss(right, PROTOS, torch.zeros(1, 2), 0.5).item() == 0.0


def test_a_step_moves_the_vector_toward_its_own_prototype() -> None:
    torch.manual_seed(0)
    protos = F.normalize(torch.randn(3, 2, 8), dim=-1)
    raw = torch.randn(4, 3, 8, requires_grad=True)
    concepts = torch.tensor([[1.0, 0, 1], [0, 1, 0], [1, 1, 1], [0, 0, 1]])
    loss = prototype_contrastive_loss(F.normalize(raw, dim=-1), protos, concepts, 0.3)
    loss.backward()
    stepped = F.normalize(raw - 0.5 * raw.grad, dim=-1)
    before = torch.einsum("bkd,kmd->bkm", F.normalize(raw, dim=-1), protos).amax(-1)
    after = torch.einsum("bkd,kmd->bkm", stepped, protos).amax(-1)
    present = concepts > 0
    assert (after[present] > before[present]).all()
    assert prototype_contrastive_loss(stepped, protos, concepts, 0.3) < loss


def test_diversity_is_one_when_collapsed_and_low_when_spread() -> None:
    same = F.normalize(torch.ones(3, 2, 4), dim=-1)
    assert prototype_diversity(same) == pytest.approx(1.0)
    assert prototype_diversity(torch.eye(6).view(3, 2, 6)) == pytest.approx(0.0)
