"""The segmenter: backbone encoder, FPN-style decoder, mask logits at input resolution.

    encoder stages e_i (B, C_i, S/r_i, S/r_i), shallow to deep
    lateral 1×1 convs → D channels; top-down: p_i = lateral_i + upsample(p_{i+1})
    3×3 conv + ReLU on the finest p, bilinear upsample to S, 1×1 conv → (B, 1, S, S)
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from medsight_ray.models.backbone import Backbone, BackboneConfig
from medsight_ray.models.parts import PartsModule


@dataclass(frozen=True)
class SegmenterConfig:
    """Segmenter settings.

    Attributes:
        backbone: the encoder; ``feature_index`` is the deepest stage used.
        decoder_dim: D, the FPN width.
        skip_stages: how many stages (the deepest and the ones before it) feed the decoder.
    """

    backbone: BackboneConfig = BackboneConfig(min_grid=4)
    decoder_dim: int = 64
    skip_stages: int = 3


class Segmenter(PartsModule):
    """Image (B, ch, S, S) → mask logits (B, 1, S, S); higher = foreground."""

    PARTS = ("backbone", "decoder")

    def __init__(self, cfg: SegmenterConfig, in_chans: int, image_size: int) -> None:
        super().__init__()
        self.backbone = Backbone(cfg.backbone, in_chans, image_size, depth=cfg.skip_stages)
        self.decoder = nn.ModuleDict({
            "lateral": nn.ModuleList(nn.Conv2d(c, cfg.decoder_dim, 1) for c in self.backbone.channels),
            "smooth": nn.Sequential(nn.Conv2d(cfg.decoder_dim, cfg.decoder_dim, 3, padding=1), nn.ReLU(inplace=True)),
            "out": nn.Conv2d(cfg.decoder_dim, 1, 1),
        })

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        """``mask_logits`` (B, 1, S, S)."""
        stages = self.backbone.forward_features(x)
        lateral = self.decoder["lateral"]
        top = lateral[-1](stages[-1])
        for conv, feat in zip(reversed(lateral[:-1]), reversed(stages[:-1])):
            top = conv(feat) + F.interpolate(top, size=feat.shape[-2:], mode="bilinear", align_corners=False)
        top = self.decoder["smooth"](top)
        top = F.interpolate(top, size=x.shape[-2:], mode="bilinear", align_corners=False)
        return {"mask_logits": self.decoder["out"](top)}
