"""Loading backbone weights from local files: timm, MAE-style, adapted, and refused."""

from __future__ import annotations

from pathlib import Path

import pytest
import timm
import torch

from medsight_ray.errors import ConfigError
from medsight_ray.models.backbone import Backbone, BackboneConfig


def test_rgb_resnet_weights_load_into_a_grayscale_backbone(tmp_path: Path) -> None:
    torch.manual_seed(0)
    source = timm.create_model("resnet10t", pretrained=False, num_classes=10)
    torch.save({"state_dict": {f"module.{k}": v for k, v in source.state_dict().items()}}, tmp_path / "r.pth")
    bb = Backbone(BackboneConfig("resnet10t", pretrained_path=str(tmp_path / "r.pth")), 1, 64)
    report = bb.load_report
    assert "conv1.0.weight" in report.adapted and report.missing == []
    assert "fc.weight" in report.dropped
    assert torch.allclose(bb.model.conv1[0].weight, source.conv1[0].weight.sum(1, keepdim=True))
    assert torch.equal(bb.model.layer1[0].conv1.weight, source.layer1[0].conv1.weight)


def test_mae_style_vit_checkpoint_maps_keys_drops_decoder_and_resamples(tmp_path: Path) -> None:
    torch.manual_seed(0)
    vit = timm.create_model("vit_tiny_patch16_224", pretrained=False, num_classes=0)
    state = {f"encoder.{k}" if i % 2 else k: v for i, (k, v) in enumerate(vit.state_dict().items())}
    state.update({"decoder_embed.weight": torch.zeros(8, 192), "mask_token": torch.zeros(1, 1, 192)})
    torch.save({"model": state, "epoch": 400}, tmp_path / "mae.pth")
    bb = Backbone(BackboneConfig("vit_tiny_patch16_224", min_grid=4,
                                 pretrained_path=str(tmp_path / "mae.pth")), 3, 64)
    report = bb.load_report
    assert "pos_embed" in report.adapted  # 14x14 grid resampled to 4x4
    assert {"decoder_embed.weight", "mask_token"} <= set(report.dropped)
    assert report.unexpected == [] and report.missing == []
    assert torch.equal(bb.model.blocks[0].attn.qkv.weight, vit.blocks[0].attn.qkv.weight)
    assert "missing 0" in report.summary()


def test_missing_corrupt_and_foreign_checkpoints_are_refused(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="pretrained file does not exist"):
        Backbone(BackboneConfig("resnet10t", pretrained_path=str(tmp_path / "none.pth")), 1, 64)
    (tmp_path / "bad.pth").write_bytes(b"\x00garbage" * 10)
    with pytest.raises(ConfigError, match="checkpoint does not load"):
        Backbone(BackboneConfig("resnet10t", pretrained_path=str(tmp_path / "bad.pth")), 1, 64)
    torch.save({"encoder.layer.weight": torch.zeros(3)}, tmp_path / "foreign.pth")
    with pytest.raises(ConfigError, match="does not fit this backbone"):
        Backbone(BackboneConfig("resnet10t", pretrained_path=str(tmp_path / "foreign.pth")), 1, 64)


def test_a_final_model_of_our_own_fine_tunes_a_new_run(tmp_path: Path) -> None:
    """The usual fine-tuning recipe: start from an earlier run's final model, whose
    backbone keys sit under ``backbone.model.`` beside its head's. Every tensor of its
    backbone loads (the stages it kept: a backbone is cut after its feature stage)."""
    torch.manual_seed(0)
    trained = Backbone(BackboneConfig("resnet10t"), 1, 64)
    state = {f"backbone.{k}": v for k, v in trained.state_dict().items()}
    state["classifier.weight"] = torch.zeros(4, 512)
    torch.save({"state_dict": state}, tmp_path / "final_model.pt")
    fresh = Backbone(BackboneConfig("resnet10t", pretrained_path=str(tmp_path / "final_model.pt")), 1, 64)
    assert set(fresh.load_report.loaded) == set(trained.model.state_dict())
    assert torch.equal(fresh.model.conv1[0].weight, trained.model.conv1[0].weight)
