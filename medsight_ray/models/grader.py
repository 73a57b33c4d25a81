"""The cataract grader: backbone, global average pool, dropout, linear classifier.

The backbone can be frozen for the first epochs and unfrozen later at its own
learning rate (seed 003's schedule); see :class:`PartsModule`.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from medsight_ray.models.backbone import Backbone, BackboneConfig
from medsight_ray.models.parts import PartsModule


@dataclass(frozen=True)
class GraderConfig:
    """Grader settings.

    Attributes:
        backbone: the feature extractor.
        dropout: dropout before the linear classifier.
    """

    backbone: BackboneConfig = BackboneConfig(min_grid=1)
    dropout: float = 0.1


class Grader(PartsModule):
    """Image → class logits (B, num_classes); higher = more likely."""

    PARTS = ("backbone", "classifier")

    def __init__(self, cfg: GraderConfig, in_chans: int, image_size: int, num_classes: int) -> None:
        super().__init__()
        self.backbone = Backbone(cfg.backbone, in_chans, image_size)
        self.classifier = nn.Sequential(nn.Dropout(cfg.dropout), nn.Linear(self.backbone.out_channels, num_classes))

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        """``logits`` (B, num_classes) for images (B, ch, S, S)."""
        features = self.backbone(x).mean(dim=(-2, -1))
        return {"logits": self.classifier(features)}
