"""The 3-stage chest X-ray concept model (MedSight3's design).

    image (B, ch, S, S)
      └ backbone ─▶ features f (B, F, H, W)
           ├ concept_head: 1×1 conv ─▶ CAMs (B, K, H, W) ─ global max ─▶ concept logits (B, K)
           └ projector: 1×1 convs ─▶ projected g (B, D, H, W)
                 local concept vectors v (B, K, D): CAM-weighted mean of g, L2-normalised,
                 weights softmax over H·W of the *detached* CAM of each concept
                 prototypes P (K, M, D), L2-normalised ─▶ similarity s = v·P (B, K, M)
      task_head: linear over [sigmoid(concept logits), max_m s] (B, 2K) ─▶ disease logits (B, C)

Stage 1 trains ``backbone`` and ``concept_head``; stage 2 ``projector`` and
``prototypes``; stage 3 ``task_head``. CAMs enter stage 2 detached, so prototype
learning cannot move stage 1's localisation.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import torch
import torch.nn.functional as F
from torch import nn

from medsight_ray.models.backbone import Backbone, BackboneConfig
from medsight_ray.models.parts import PartsModule


@dataclass(frozen=True)
class ConceptModelConfig:
    """Concept model settings.

    Attributes:
        backbone: the feature extractor.
        proj_dim: D, the prototype space dimension (128 in the seeds).
        prototypes_per_concept: M.
        cam_temperature: softmax temperature of the CAM pooling weights; lower
            pools more sharply at the CAM peak.
    """

    backbone: BackboneConfig = BackboneConfig()
    proj_dim: int = 128
    prototypes_per_concept: int = 4
    cam_temperature: float = 1.0

    #: Fields that fix the weights' shapes; a later stage inherits them from its checkpoint.
    ARCHITECTURE: ClassVar[tuple[str, ...]] = ("backbone", "proj_dim", "prototypes_per_concept")


class ConceptModel(PartsModule):
    """Concept bottleneck with CAMs and prototypes; see the module docstring."""

    PARTS = ("backbone", "concept_head", "projector", "prototypes", "task_head")

    def __init__(self, cfg: ConceptModelConfig, in_chans: int, image_size: int, num_concepts: int,
                 num_targets: int) -> None:
        super().__init__()
        self.cfg = cfg
        self.backbone = Backbone(cfg.backbone, in_chans, image_size)
        width = self.backbone.out_channels
        self.concept_head = nn.Conv2d(width, num_concepts, kernel_size=1)
        self.projector = nn.Sequential(
            nn.Conv2d(width, cfg.proj_dim, kernel_size=1), nn.ReLU(inplace=True),
            nn.Conv2d(cfg.proj_dim, cfg.proj_dim, kernel_size=1),
        )
        self.prototypes = nn.Parameter(torch.randn(num_concepts, cfg.prototypes_per_concept, cfg.proj_dim))
        self.task_head = nn.Linear(2 * num_concepts, num_targets)

    def local_vectors(self, cams: torch.Tensor, projected: torch.Tensor) -> torch.Tensor:
        """CAM-weighted pooling: (B, K, H, W) CAMs, (B, D, H, W) features → (B, K, D), unit norm."""
        weights = torch.softmax(cams.detach().flatten(2) / self.cfg.cam_temperature, dim=-1)  # (B, K, HW)
        vectors = torch.einsum("bkn,bdn->bkd", weights, projected.flatten(2))
        return F.normalize(vectors, dim=-1)

    def normalised_prototypes(self) -> torch.Tensor:
        """Prototypes on the unit sphere: (K, M, D)."""
        return F.normalize(self.prototypes, dim=-1)

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        """Run every head.

        Args:
            x: images (B, ch, S, S).

        Returns:
            ``cams`` (B, K, H, W) logits; ``concept_logits`` (B, K), higher = present;
            ``local_vectors`` (B, K, D); ``prototype_sim`` (B, K, M) cosine in [-1, 1];
            ``task_logits`` (B, C), higher = disease present; ``prototypes`` (K, M, D)
            unit vectors (returned so that losses use them inside the forward pass).
        """
        backbone_trains = any(p.requires_grad for p in self.backbone.parameters())
        with torch.set_grad_enabled(torch.is_grad_enabled() and backbone_trains):
            features = self.backbone(x)
        cams = self.concept_head(features)
        concept_logits = cams.amax(dim=(-2, -1))
        vectors = self.local_vectors(cams, self.projector(features))
        prototypes = self.normalised_prototypes()
        sim = torch.einsum("bkd,kmd->bkm", vectors, prototypes)
        evidence = torch.cat([torch.sigmoid(concept_logits), sim.amax(dim=-1)], dim=1)
        return {"cams": cams, "concept_logits": concept_logits, "local_vectors": vectors,
                "prototype_sim": sim, "task_logits": self.task_head(evidence), "prototypes": prototypes}
