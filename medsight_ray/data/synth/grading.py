"""Synthetic eye images for the 4-class cataract grader.

An RGB fundus-like disc with a central lens region whose opacity ("haze") grows with
the grade: clear for No Cataract, patchy for Immature, dense white for Mature; IOL
Inserted shows a bright ring (the implant's edge) around a mostly clear lens. Haze
ranges overlap between neighbouring classes, so the task is separable but not trivial.
Class frequencies follow :attr:`Knobs.class_priors` (the cataract data's 41/13/33/13 %).
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np

from medsight_ray.data.images import encode_png
from medsight_ray.data.synth.background import grid, smooth_noise, to_uint8
from medsight_ray.data.synth.knobs import Knobs

#: Haze range (low, high) per class; neighbours overlap.
HAZE = ((0.0, 0.3), (0.25, 0.55), (0.5, 0.9), (0.0, 0.3))


def draw_row(index: int, seed: int, size: int, knobs: Knobs) -> dict:
    """Make one row; deterministic in (seed, index)."""
    rng = np.random.default_rng([seed, 2, index])
    priors = np.asarray(knobs.class_priors, dtype=float)
    label = int(rng.choice(len(priors), p=priors / priors.sum()))
    yy, xx = grid(size)
    cx, cy = 0.5 + rng.uniform(-0.05, 0.05, 2)
    r = np.sqrt((xx - cx) ** 2 + (yy - cy) ** 2)
    eye = np.clip((0.46 - r) / 0.02, 0, 1)
    base = np.stack([0.75 * eye, 0.35 * eye, 0.2 * eye], axis=-1)
    lens = np.clip((0.22 - r) / 0.02, 0, 1)
    pupil = 0.1 * lens
    lo, hi = HAZE[label % len(HAZE)]
    haze = rng.uniform(lo, hi) * knobs.signal
    patches = 0.5 + 0.5 * smooth_noise(rng, size, cells=5)
    img = base * (1 - lens[..., None]) + pupil[..., None]
    img = img + (haze * lens * (0.6 + 0.4 * patches))[..., None] * np.array([0.95, 0.95, 0.9])
    if label == 3:
        ring = np.exp(-(((r - 0.16) / 0.015) ** 2)) * knobs.signal
        img = img + 0.6 * ring[..., None]
    img = img + rng.normal(0, 0.03, img.shape)
    if rng.random() < knobs.label_noise:
        label = int(rng.integers(len(priors)))
    return {"image_id": f"eye{index:06d}", "image": encode_png(to_uint8(img)), "label": label}


def rows(n: int, size: int, seed: int, knobs: Knobs) -> Iterator[dict]:
    """Yield ``n`` rows of the ``grading`` layout (without split/patient)."""
    for i in range(n):
        yield draw_row(i, seed, size, knobs)
