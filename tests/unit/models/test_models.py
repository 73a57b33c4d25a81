"""Models: shapes, which parts get gradients in each stage, CNN and ViT, 1 and 3 channels."""

from __future__ import annotations

import pytest
import torch

from medsight_ray.errors import ConfigError
from medsight_ray.losses.prototype import prototype_contrastive_loss
from medsight_ray.models.backbone import Backbone, BackboneConfig
from medsight_ray.models.concept import ConceptModel, ConceptModelConfig
from medsight_ray.models.grader import Grader, GraderConfig
from medsight_ray.models.segmenter import Segmenter, SegmenterConfig

CNN = BackboneConfig("resnet10t")
VIT = BackboneConfig("vit_tiny_patch16_224", patch_size=8)
STAGE_PARTS = {"concepts": {"backbone", "concept_head"}, "prototypes": {"projector", "prototypes"},
               "diagnosis": {"task_head"}}


def _concept_model(backbone: BackboneConfig = CNN, chans: int = 1) -> ConceptModel:
    torch.manual_seed(0)
    return ConceptModel(ConceptModelConfig(backbone=backbone, proj_dim=16, prototypes_per_concept=3), chans, 64, 5, 2)


@pytest.mark.parametrize(("backbone", "chans"), [(CNN, 1), (VIT, 1), (CNN, 3)])
def test_concept_model_shapes_and_an_8x8_cam_grid(backbone: BackboneConfig, chans: int) -> None:
    model = _concept_model(backbone, chans)
    out = model(torch.randn(2, chans, 64, 64))
    assert out["cams"].shape == (2, 5, 8, 8)
    assert torch.equal(out["concept_logits"], out["cams"].amax((-2, -1)))
    assert out["local_vectors"].shape == (2, 5, 16)
    assert torch.allclose(out["local_vectors"].norm(dim=-1), torch.ones(2, 5))
    assert out["prototype_sim"].shape == (2, 5, 3) and out["prototype_sim"].abs().max() <= 1 + 1e-5
    assert out["task_logits"].shape == (2, 2)


def _stage_loss(stage: str, out: dict[str, torch.Tensor], model: ConceptModel) -> torch.Tensor:
    if stage == "concepts":
        return out["concept_logits"].sum()
    if stage == "prototypes":
        present = torch.ones(out["local_vectors"].shape[:2])
        return prototype_contrastive_loss(out["local_vectors"], model.normalised_prototypes(), present, 0.3)
    return out["task_logits"].sum()


@pytest.mark.parametrize("stage", sorted(STAGE_PARTS))
def test_gradients_reach_exactly_the_trained_parts(stage: str) -> None:
    model = _concept_model()
    model.set_trainable(STAGE_PARTS[stage])
    model.train()
    _stage_loss(stage, model(torch.randn(2, 1, 64, 64)), model).backward()
    for part in model.PARTS:
        grads = [p.grad for p in model.part_parameters(part)]
        if part in STAGE_PARTS[stage]:
            assert any(g is not None and g.abs().sum() > 0 for g in grads), part
        else:
            assert all(g is None for g in grads), part
    # Frozen parts stay in eval mode (BatchNorm statistics cannot drift) despite train().
    bn = [m for m in model.backbone.modules() if isinstance(m, torch.nn.BatchNorm2d)]
    assert all(m.training == ("backbone" in STAGE_PARTS[stage]) for m in bn)


def test_prototype_loss_never_moves_the_cams() -> None:
    model = _concept_model()
    model.set_trainable(model.PARTS)  # even with everything trainable
    out = model(torch.randn(2, 1, 64, 64))
    _stage_loss("prototypes", out, model).backward()
    assert model.concept_head.weight.grad is None


def test_frozen_backbone_does_not_change_in_a_train_step() -> None:
    model = _concept_model()
    model.set_trainable(STAGE_PARTS["prototypes"])
    model.train()
    before = {k: v.clone() for k, v in model.backbone.state_dict().items()}
    opt = torch.optim.SGD([p for p in model.parameters() if p.requires_grad], lr=1.0)
    for _ in range(2):
        opt.zero_grad()
        _stage_loss("prototypes", model(torch.randn(4, 1, 64, 64)), model).backward()
        opt.step()
    after = model.backbone.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)  # running stats included


@pytest.mark.parametrize("backbone", [BackboneConfig("resnet10t", min_grid=1), VIT])
def test_grader_and_segmenter(backbone: BackboneConfig) -> None:
    grader = Grader(GraderConfig(backbone=backbone), 3, 64, 4)
    assert grader(torch.randn(2, 3, 64, 64))["logits"].shape == (2, 4)
    grader.set_trainable({"classifier"})
    grader(torch.randn(2, 3, 64, 64))["logits"].sum().backward()
    assert all(p.grad is None for p in grader.backbone.parameters())
    seg = Segmenter(SegmenterConfig(backbone=backbone), 1, 64)
    out = seg(torch.randn(2, 1, 64, 64))["mask_logits"]
    assert out.shape == (2, 1, 64, 64)
    out.mean().backward()
    assert all(p.grad is not None for p in seg.parameters() if p.requires_grad)


def test_segmenter_decoder_uses_several_stages() -> None:
    seg = Segmenter(SegmenterConfig(backbone=BackboneConfig("resnet10t", min_grid=4), skip_stages=3), 1, 64)
    assert len(seg.backbone.indices) == 3 and seg.backbone.reductions[-1] == 16


def test_backbone_errors_name_the_problem() -> None:
    with pytest.raises(ConfigError, match="unknown timm backbone.*resnet18"):
        Backbone(BackboneConfig("resnet181"), 1, 64)
    with pytest.raises(ConfigError, match="fine enough grid"):
        Backbone(BackboneConfig("resnet10t", min_grid=64), 1, 64)
    with pytest.raises(ConfigError, match="unknown model part.*'backbone'"):
        _concept_model().set_trainable({"head"})


def test_identical_prototype_init_never_separates() -> None:
    """The zoo's prototype collapse: equal prototypes get equal gradients forever."""
    from medsight_ray.stages.prototypes import within_similarity

    model = _concept_model()
    with torch.no_grad():  # what the zoo's IdenticalPrototypes stage does
        model.prototypes.copy_(model.prototypes[:, :1].expand_as(model.prototypes))
    model.set_trainable(STAGE_PARTS["prototypes"])
    opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=0.3)
    for _ in range(3):
        opt.zero_grad()
        _stage_loss("prototypes", model(torch.randn(4, 1, 64, 64)), model).backward()
        opt.step()
    assert within_similarity(model.normalised_prototypes().detach()) == pytest.approx(1.0, abs=1e-5)
    random = _concept_model()
    assert within_similarity(random.normalised_prototypes().detach()) < 0.5
