"""Synthetic chest X-rays for the 3-stage concept model.

Each of the K concepts has its own pattern: 11 textures (disc, ring, square, frame,
plus, cross, horizontal, vertical and diagonal stripes, checkerboard, dot grid), drawn
bright for the first 11 concepts and dark for the next 11. A present concept is drawn
inside its box, in a lung field, on a noisy chest-like background, so the concept is
both classifiable and localisable. Prevalence falls geometrically with the concept
index (about 16 % for the first down to 3 % for the last), like VinDr-CXR's long tail.

The C targets follow from the concepts: each disease is present when any of its
concepts is, and "No finding" when none is.
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np

from medsight_ray.data.images import encode_png
from medsight_ray.data.schema import VINDR_CONCEPTS, VINDR_TARGETS
from medsight_ray.data.synth.background import chest_field, grid, to_uint8
from medsight_ray.data.synth.knobs import Knobs

#: Which concepts make each disease (by VinDr name); "No finding" is "none present".
DISEASE_CONCEPTS: dict[str, tuple[str, ...]] = {
    "Lung tumor": ("Nodule/Mass", "Other lesion", "Mediastinal shift"),
    "Pneumonia": ("Consolidation", "Infiltration", "Lung Opacity"),
    "Tuberculosis": ("Calcification", "Lung cavity", "Pleural thickening", "Pulmonary fibrosis"),
    "Other diseases": ("Cardiomegaly", "Aortic enlargement", "Pleural effusion", "Edema",
                       "Enlarged PA", "Atelectasis", "ILD"),
    "COPD": ("Emphysema", "Lung cyst", "Pneumothorax"),
}
AMPLITUDE = 0.45


def prevalence(k: int, first: float = 0.16, ratio: float = 0.92) -> float:
    """Probability that concept ``k`` is present on an image."""
    return first * ratio**k


def texture(kind: int, u: np.ndarray, v: np.ndarray) -> np.ndarray:
    """Pattern ``kind`` (0–10) over box coordinates u, v in [-1, 1]; values in [0, 1]."""
    r = np.sqrt(u**2 + v**2)
    patterns = (
        lambda: (r < 0.8),                                           # disc
        lambda: (np.abs(r - 0.65) < 0.2),                            # ring
        lambda: (np.maximum(np.abs(u), np.abs(v)) < 0.7),            # square
        lambda: (np.abs(np.maximum(np.abs(u), np.abs(v)) - 0.75) < 0.18),  # frame
        lambda: ((np.abs(u) < 0.25) | (np.abs(v) < 0.25)),           # plus
        lambda: ((np.abs(u - v) < 0.3) | (np.abs(u + v) < 0.3)),     # cross
        lambda: (np.sin(v * 2.5 * np.pi) > 0),                       # horizontal stripes
        lambda: (np.sin(u * 2.5 * np.pi) > 0),                       # vertical stripes
        lambda: ((np.sin(u * 2 * np.pi) > 0) ^ (np.sin(v * 2 * np.pi) > 0)),  # checkerboard
        lambda: ((np.sin(u * 2.5 * np.pi) > 0.3) & (np.sin(v * 2.5 * np.pi) > 0.3)),  # dots
        lambda: (np.sin((u + v) * 2.0 * np.pi) > 0),                 # diagonal stripes
    )
    return patterns[kind % len(patterns)]().astype(np.float32)


def _place_box(rng: np.random.Generator, lungs_centres: list[tuple[float, float]],
               taken: list[tuple[float, float, float, float]]) -> tuple[float, float, float, float]:
    """Pick a box (x_min, y_min, x_max, y_max) in a lung field, avoiding overlap if it can."""
    box = (0.0, 0.0, 0.0, 0.0)
    for _ in range(20):
        w, h = rng.uniform(0.2, 0.3, 2)
        cx, cy = lungs_centres[rng.integers(len(lungs_centres))]
        x0 = float(np.clip(cx + rng.uniform(-0.12, 0.12) - w / 2, 0.02, 0.98 - w))
        y0 = float(np.clip(cy + rng.uniform(-0.25, 0.25) - h / 2, 0.02, 0.98 - h))
        box = (x0, y0, x0 + w, y0 + h)
        if all(box[2] <= t[0] or t[2] <= box[0] or box[3] <= t[1] or t[3] <= box[1] for t in taken):
            return box
    return box


def draw_row(index: int, seed: int, size: int, knobs: Knobs,
             concept_names: tuple[str, ...], target_names: tuple[str, ...]) -> dict:
    """Make one row; deterministic in (seed, index)."""
    rng = np.random.default_rng([seed, 1, index])
    k_count = len(concept_names)
    present = rng.random(k_count) < np.array([prevalence(k) for k in range(k_count)])
    if knobs.zero_label_column is not None:
        present[concept_names.index(knobs.zero_label_column)] = False
    image, _ = chest_field(rng, size)
    yy, xx = grid(size)
    boxes: list[dict] = []
    taken: list[tuple[float, float, float, float]] = []
    for k in np.flatnonzero(present):
        x0, y0, x1, y1 = _place_box(rng, [(0.3, 0.5), (0.7, 0.5)], taken)
        taken.append((x0, y0, x1, y1))
        u = (xx - (x0 + x1) / 2) / ((x1 - x0) / 2)
        v = (yy - (y0 + y1) / 2) / ((y1 - y0) / 2)
        inside = (np.abs(u) <= 1) & (np.abs(v) <= 1)
        sign = 1.0 if k < 11 else -1.0
        image += sign * AMPLITUDE * knobs.signal * texture(int(k), u, v) * inside
        if rng.random() < knobs.broken_box_fraction:
            x0, x1 = x1, x0
        boxes.append({"concept": int(k), "x_min": x0, "y_min": y0, "x_max": x1, "y_max": y1})
    targets = []
    for name in target_names:
        if name == "No finding":
            targets.append(int(not present.any()))
        else:
            members = [concept_names.index(c) for c in DISEASE_CONCEPTS.get(name, ()) if c in concept_names]
            targets.append(int(present[members].any()) if members else 0)
    concepts = present.astype(int)
    if knobs.label_noise > 0:
        concepts = np.where(rng.random(k_count) < knobs.label_noise, 1 - concepts, concepts)
        # A concept flipped off keeps its pattern but loses its box, so that the
        # noisy labels stay consistent with the boxes (noise, not a broken layout).
        boxes = [b for b in boxes if concepts[b["concept"]]]
        flips = rng.random(len(targets)) < knobs.label_noise
        targets = [1 - t if f else t for t, f in zip(targets, flips)]
    return {
        "image_id": f"cxr{index:06d}",
        "image": encode_png(to_uint8(image)),
        "concepts": [int(c) for c in concepts],
        "targets": [int(t) for t in targets],
        "boxes": boxes,
    }


def rows(n: int, size: int, seed: int, knobs: Knobs) -> Iterator[dict]:
    """Yield ``n`` rows of the ``concepts`` layout (without split/patient)."""
    for i in range(n):
        yield draw_row(i, seed, size, knobs, VINDR_CONCEPTS, VINDR_TARGETS)
