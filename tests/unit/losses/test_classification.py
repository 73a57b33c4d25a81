"""CE and focal loss: values, the γ = 0 identity, and that a step lowers them."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from medsight_ray.errors import ConfigError
from medsight_ray.losses.classification import classification_loss


def test_hand_computed() -> None:
    logits = torch.tensor([[0.0, math.log(3.0)]])  # p = [0.25, 0.75]
    target = torch.tensor([1])
    assert classification_loss(logits, target, "ce").item() == pytest.approx(-math.log(0.75))
    assert classification_loss(logits, target, "focal", gamma=2).item() == pytest.approx(
        -(0.25**2) * math.log(0.75))


def test_focal_with_gamma_zero_is_torch_ce_with_weights_and_smoothing() -> None:
    torch.manual_seed(0)
    logits, target = torch.randn(16, 4), torch.randint(0, 4, (16,))
    w = torch.tensor([0.5, 2.0, 1.0, 1.5])
    for eps in (0.0, 0.1):
        ce = F.cross_entropy(logits, target, weight=w, label_smoothing=eps)
        focal = classification_loss(logits, target, "focal", weight=w, label_smoothing=eps, gamma=0.0)
        assert focal.item() == pytest.approx(ce.item(), rel=1e-6)


def test_focal_down_weights_easy_samples() -> None:
    easy = torch.tensor([[0.0, math.log(9.0)]])  # p_true = 0.9
    ratio = classification_loss(easy, torch.tensor([1]), "focal", gamma=2) / classification_loss(
        easy, torch.tensor([1]), "ce")
    assert ratio.item() == pytest.approx(0.01)


@pytest.mark.parametrize("name", ["ce", "focal"])
def test_perfect_worse_and_a_step(name: str) -> None:
    target = torch.tensor([0, 1, 2])
    perfect = torch.eye(3) * 30
    assert classification_loss(perfect, target, name).item() < 1e-6
    assert classification_loss(-perfect, target, name) > classification_loss(perfect * 0, target, name)
    logits = torch.randn(3, 3, requires_grad=True)
    soft = F.one_hot(target, 3).float() * 0.6 + 0.4 * F.one_hot(target.roll(1), 3).float()  # MixUp targets
    for tgt in (target, soft):
        loss = classification_loss(logits, tgt, name, weight=torch.tensor([1.0, 2.0, 0.5]))
        (grad,) = torch.autograd.grad(loss, logits)
        assert classification_loss(logits - 0.5 * grad, tgt, name, weight=torch.tensor([1.0, 2.0, 0.5])) < loss


def test_unknown_name_lists_the_known() -> None:
    with pytest.raises(ConfigError, match="'ce', 'focal'"):
        classification_loss(torch.zeros(1, 2), torch.tensor([0]), "hinge")


def test_the_grading_loss_floor_is_the_loss_of_predicting_the_targets_exactly() -> None:
    """Hand-computed: with label smoothing 0.3 on 4 classes the target of a label is
    (0.775, 0.075, 0.075, 0.075), whose entropy, the least cross-entropy a model can
    reach, is 0.7804; without smoothing it is 0. The train step reports it beside the
    loss, and the loss of a model predicting those targets equals it."""
    import math
    from types import SimpleNamespace

    import torch
    from torch.nn import functional as F

    from medsight_ray.config import apply_overrides
    from medsight_ray.stages.grading import GradingStage

    stage = GradingStage()
    for smoothing, expected in ((0.3, -(0.775 * math.log(0.775) + 3 * 0.075 * math.log(0.075))), (0.0, 0.0)):
        cfg = apply_overrides(stage.config_cls(), [f"loss.label_smoothing={smoothing}", "loss.class_weight_power=0"])
        ctx = SimpleNamespace(cfg=cfg, extra={"class_weight": torch.ones(4)})
        target = torch.tensor([0, 2, 3, 1])
        floor = float(stage._loss_floor(target, 4, ctx))
        assert floor == pytest.approx(expected, abs=1e-4)
        q = F.one_hot(target, 4).float() * (1 - smoothing) + smoothing / 4
        assert float(stage._loss(q.clamp_min(1e-12).log(), target, ctx)) == pytest.approx(floor, abs=1e-6)
    assert expected == 0.0 and floor == pytest.approx(0.0, abs=1e-4)
