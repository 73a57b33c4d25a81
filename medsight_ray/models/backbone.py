"""Any timm model as a spatial feature extractor.

CNNs and ViTs alike go through timm's ``forward_intermediates``: a CNN yields a stage's
feature map, a ViT its patch-token grid reshaped to (B, C, H, W), prefix tokens
dropped. Layers after the deepest requested stage are pruned, so an early stage costs
only what it computes. Weights start random (``pretrained=False``) or load from a
local file (:mod:`medsight_ray.models.pretrained`); nothing is ever downloaded.
"""

from __future__ import annotations

import difflib
import logging
from dataclasses import dataclass

import timm
import torch
from torch import nn

from medsight_ray.errors import ConfigError

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class BackboneConfig:
    """Backbone settings.

    Attributes:
        name: any timm model name, e.g. ``resnet18`` or ``vit_tiny_patch16_224``.
        feature_index: which stage's output to use (timm ``feature_info`` index; -1 =
            last). ``None`` picks the deepest stage whose grid is at least
            ``min_grid`` cells a side at the input size: CAMs need a grid fine
            enough to localise (a stride-32 map of a 64 px image is 2×2).
        min_grid: smallest acceptable grid side when ``feature_index`` is None.
        pretrained_path: local checkpoint file (timm, torchvision-style or MAE).
        patch_size: ViT patch size override (smaller patches, finer grid).
        drop_path_rate: stochastic depth, where the model supports it.
    """

    name: str = "resnet18"
    feature_index: int | None = None
    min_grid: int = 8
    pretrained_path: str | None = None
    patch_size: int | None = None
    drop_path_rate: float = 0.0


def create_timm(cfg: BackboneConfig, in_chans: int, image_size: int) -> nn.Module:
    """Create the timm model without a head; unknown names list close matches."""
    if not timm.is_model(cfg.name):
        close = difflib.get_close_matches(cfg.name, timm.list_models(), n=5, cutoff=0.6)
        raise ConfigError("unknown timm backbone", where="backbone.name",
                          expected=f"a timm model name{f', e.g. {close}' if close else ''}",
                          got=repr(cfg.name), fix="see timm.list_models('*pattern*')")
    kwargs: dict = {"pretrained": False, "num_classes": 0, "in_chans": in_chans}
    if cfg.drop_path_rate:
        kwargs["drop_path_rate"] = cfg.drop_path_rate
    vit_kwargs = {"img_size": image_size, **({"patch_size": cfg.patch_size} if cfg.patch_size else {})}
    try:
        return timm.create_model(cfg.name, **kwargs, **vit_kwargs)
    except TypeError:
        # CNN entry points reject img_size/patch_size; ViTs need them.
        return timm.create_model(cfg.name, **kwargs)


class Backbone(nn.Module):
    """timm model → feature maps.

    Args:
        cfg: backbone settings.
        in_chans: 1 for grayscale X-rays, 3 for RGB.
        image_size: input side S in pixels.
        depth: how many consecutive stages to return, ending at the one ``cfg``
            selects (1 for heads on one map, more for a decoder with skips).

    Attributes:
        indices: the stages returned, ascending.
        channels: channels of each returned stage.
        reductions: stride of each returned stage (S / H).
    """

    def __init__(self, cfg: BackboneConfig, in_chans: int, image_size: int, depth: int = 1) -> None:
        super().__init__()
        self.cfg = cfg
        self.model = create_timm(cfg, in_chans, image_size)
        info = self.model.feature_info
        if not hasattr(self.model, "forward_intermediates") or not info:
            raise ConfigError("backbone cannot give feature maps", where="backbone.name",
                              expected="a timm model with forward_intermediates (most CNNs and ViTs)",
                              got=repr(cfg.name))
        n = len(info)
        deepest = self._select(info, image_size)
        if not -n <= deepest < n:
            raise ConfigError("feature index out of range", where="backbone.feature_index",
                              expected=f"-{n} <= index < {n} for {cfg.name}", got=str(deepest))
        deepest %= n
        self.indices = tuple(range(max(0, deepest - depth + 1), deepest + 1))
        self.channels = tuple(int(info[i]["num_chs"]) for i in self.indices)
        self.reductions = tuple(int(info[i]["reduction"]) for i in self.indices)
        self.load_report = None
        if cfg.pretrained_path:
            from medsight_ray.models.pretrained import load_pretrained

            # Load before pruning, so that a full checkpoint's later layers match.
            self.load_report = load_pretrained(self.model, cfg.pretrained_path, in_chans)
            log.info("backbone %s: %s", cfg.name, self.load_report.summary())
        self.model.prune_intermediate_layers(list(self.indices), prune_norm=True, prune_head=True)

    def _select(self, info: list[dict], image_size: int) -> int:
        if self.cfg.feature_index is not None:
            return self.cfg.feature_index
        fine = [i for i, f in enumerate(info) if image_size // int(f["reduction"]) >= self.cfg.min_grid]
        if not fine:
            raise ConfigError("no backbone stage gives a fine enough grid", where="backbone.min_grid",
                              expected=f"a stage of {self.cfg.name} with >= {self.cfg.min_grid} cells a side "
                              f"at {image_size} px", got=f"strides {[f['reduction'] for f in info]}",
                              fix="use larger images, a smaller patch_size, or lower backbone.min_grid")
        return fine[-1]

    @property
    def out_channels(self) -> int:
        """Channels of the deepest returned stage."""
        return self.channels[-1]

    def forward_features(self, x: torch.Tensor) -> list[torch.Tensor]:
        """All requested stages: list of (B, C_i, S / r_i, S / r_i)."""
        return self.model.forward_intermediates(x, indices=list(self.indices), intermediates_only=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Deepest requested stage: (B, C, H, W) for input (B, in_chans, S, S)."""
        return self.forward_features(x)[-1]
