"""How much the inputs differ from one image to the next.

A model cannot learn from inputs that are all the same (a broken decode that yields one
gray image, blank exports): every rule that reads its outputs then sees a model that
"does nothing", and would blame the learning rate. This measures the inputs themselves,
cheaply, during validation: each image is reduced to a few fixed random projections of
its pixels (a sketch), and the spread of the sketches across images says whether the
images differ at all.
"""

from __future__ import annotations

import numpy as np
import torch

#: Random projections per image: enough that two different images almost surely differ
#: in one of them, few enough to gather across workers for free.
SKETCH_DIMS = 8
_SEED = 20261207


def _directions(features: int, device: torch.device) -> torch.Tensor:
    """(features, SKETCH_DIMS) fixed random unit directions, the same on every worker."""
    generator = torch.Generator().manual_seed(_SEED + features)
    directions = torch.randn(features, SKETCH_DIMS, generator=generator)
    return (directions / directions.norm(dim=0, keepdim=True)).to(device)


@torch.no_grad()
def sketch(images: torch.Tensor) -> np.ndarray:
    """(B, C, H, W) images → (B, SKETCH_DIMS) float64 projections of their pixels."""
    flat = images.detach().flatten(1).float()
    return (flat @ _directions(flat.shape[1], flat.device)).double().cpu().numpy()


def input_spread(sketches: np.ndarray) -> float:
    """How much the images differ: the standard deviation of the sketches across images
    over their root mean square, the largest over the projections. (N, SKETCH_DIMS) →
    a ratio: 0 when every image has the same pixels, near 1 or above for images that
    differ as natural images do (their scale does not matter: normalised or raw pixel
    values read alike). NaN with fewer than two images."""
    if sketches.ndim != 2 or sketches.shape[0] < 2:
        return float("nan")
    rms = np.sqrt(np.mean(sketches**2, axis=0))
    spread = sketches.std(axis=0)
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio = np.where(rms > 0, spread / rms, 0.0)
    return float(ratio.max())
