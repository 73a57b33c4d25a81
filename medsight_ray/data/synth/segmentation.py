"""Synthetic microscopy-like images with binary masks for the segmenter.

Each image holds a few random ellipses (cells) with a bright, textured interior on a
noisy background; the mask is their union. Knobs reproduce seed 004's trap: a share
of rows with an empty mask (``empty_mask_fraction``) and a share whose objects are
drawn but whose mask is missing (``unlabelled_fraction``, ``has_segmentation`` False).
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np

from medsight_ray.data.images import encode_png
from medsight_ray.data.synth.background import grid, smooth_noise, to_uint8
from medsight_ray.data.synth.knobs import Knobs


def draw_row(index: int, seed: int, size: int, knobs: Knobs) -> dict:
    """Make one row; deterministic in (seed, index)."""
    rng = np.random.default_rng([seed, 3, index])
    yy, xx = grid(size)
    img = 0.2 + 0.08 * smooth_noise(rng, size)
    mask = np.zeros((size, size), dtype=bool)
    empty = rng.random() < knobs.empty_mask_fraction
    unlabelled = not empty and rng.random() < knobs.unlabelled_fraction
    if not empty:
        for _ in range(int(rng.integers(2, 6))):
            cx, cy = rng.uniform(0.15, 0.85, 2)
            a, b = rng.uniform(0.06, 0.16, 2)
            t = rng.uniform(0, np.pi)
            u = (xx - cx) * np.cos(t) + (yy - cy) * np.sin(t)
            v = -(xx - cx) * np.sin(t) + (yy - cy) * np.cos(t)
            mask |= (u / a) ** 2 + (v / b) ** 2 <= 1
        img = img + knobs.signal * mask * (0.45 + 0.1 * smooth_noise(rng, size, cells=8))
    img = img + rng.normal(0, 0.05, (size, size))
    if unlabelled:
        mask[:] = False
    return {
        "image_id": f"cell{index:06d}",
        "image": encode_png(to_uint8(img)),
        "mask": encode_png(mask.astype(np.uint8) * 255),
        "has_segmentation": not unlabelled,
    }


def rows(n: int, size: int, seed: int, knobs: Knobs) -> Iterator[dict]:
    """Yield ``n`` rows of the ``segmentation`` layout (without split/patient)."""
    for i in range(n):
        yield draw_row(i, seed, size, knobs)
