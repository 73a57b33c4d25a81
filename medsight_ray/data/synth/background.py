"""Shared drawing helpers for synthetic images: coordinate grids, a chest-like field."""

from __future__ import annotations

import numpy as np


def grid(size: int) -> tuple[np.ndarray, np.ndarray]:
    """Pixel-centre coordinates in [0, 1]: (yy, xx), each (size, size) float32."""
    c = (np.arange(size, dtype=np.float32) + 0.5) / size
    return np.meshgrid(c, c, indexing="ij")


def smooth_noise(rng: np.random.Generator, size: int, cells: int = 4) -> np.ndarray:
    """Low-frequency noise in [-1, 1], (size, size): a coarse grid upsampled bilinearly."""
    from PIL import Image

    coarse = rng.uniform(-1, 1, (cells, cells)).astype(np.float32)
    img = Image.fromarray(coarse, mode="F").resize((size, size), Image.BILINEAR)
    return np.asarray(img, dtype=np.float32)


def chest_field(rng: np.random.Generator, size: int) -> tuple[np.ndarray, np.ndarray]:
    """A chest-radiograph-like background.

    Returns:
        image: float32 (size, size) in about [0, 1]: bright body, two darker lung
            fields, low-frequency variation and pixel noise.
        lungs: bool (size, size), where the lung fields are; findings go there.
    """
    yy, xx = grid(size)
    body = np.exp(-(((xx - 0.5) / 0.48) ** 4 + ((yy - 0.55) / 0.55) ** 4))
    cy = 0.5 + rng.uniform(-0.03, 0.03)
    lungs = np.zeros((size, size), dtype=bool)
    img = 0.55 * body
    for cx in (0.3 + rng.uniform(-0.03, 0.03), 0.7 + rng.uniform(-0.03, 0.03)):
        inside = ((xx - cx) / 0.17) ** 2 + ((yy - cy) / 0.32) ** 2
        img = img - 0.25 * np.clip(1.2 - inside, 0, 1)
        lungs |= inside < 1.0
    img = img + 0.06 * smooth_noise(rng, size) + rng.normal(0, 0.04, (size, size))
    return img.astype(np.float32) + 0.25, lungs


def to_uint8(image: np.ndarray) -> np.ndarray:
    """Clip float [0, 1] to uint8."""
    return (np.clip(image, 0, 1) * 255 + 0.5).astype(np.uint8)
