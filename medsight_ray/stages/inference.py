"""A trained checkpoint as a model in eval mode, and the input it expects.

Shared by ``python -m medsight_ray.predict`` and the sweep report's CAM overlays.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch

from medsight_ray.config import from_dict
from medsight_ray.data.pipeline import normalise
from medsight_ray.data.schema import DatasetInfo
from medsight_ray.fit.checkpoint import load_model_file
from medsight_ray.stages.registry import get_stage


def load_model(checkpoint: str | Path) -> tuple[Any, Any, DatasetInfo, torch.nn.Module]:
    """(stage, config, dataset info, model in eval mode) from a checkpoint."""
    meta = load_model_file(checkpoint)
    stage = get_stage(meta["task"], meta["stage"])
    cfg = from_dict(stage.config_cls, meta["config"])
    info = DatasetInfo.from_json(meta["info"])
    model = stage.build_model(cfg, info)
    model.load_state_dict(meta["state_dict"])
    return stage, cfg, info, model.eval()


def model_input(pixels: np.ndarray) -> torch.Tensor:
    """uint8 (S, S) or (S, S, 3) pixels to the normalised (1, ch, S, S) batch the pipeline feeds."""
    return torch.from_numpy(normalise((pixels[None] if pixels.ndim == 2 else pixels.transpose(2, 0, 1))[None]
                                      .astype(np.float32)))


def upsample(grid: torch.Tensor, size: int) -> np.ndarray:
    """A (h, w) map resized bilinearly to (size, size)."""
    return torch.nn.functional.interpolate(grid[None, None], size=(size, size), mode="bilinear",
                                           align_corners=False)[0, 0].numpy()
