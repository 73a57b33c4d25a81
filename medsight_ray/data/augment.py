"""Train-only augmentation, applied in the Train worker to each batch of tensors.

It runs in the worker, not in Ray Data's decode tasks, because only the worker knows
the run's seed, its rank and the epoch: with a generator seeded from the three, a run
is repeatable (same seed, same data, one worker: the same metrics), and each epoch
still draws new flips. Decode tasks finish in any order and know no epoch.

Shapes: ``image`` (B, ch, S, S) normalised; ``mask`` (B, 1, S, S); ``boxes`` (B, N, 5)
rows ``(concept, x_min, y_min, x_max, y_max)`` in [0, 1], padding rows with concept < 0.
A horizontal flip maps ``x`` to ``1 - x`` for the image, the mask and every box (and a
vertical flip ``y`` to ``1 - y``), so boxes and masks move with their image.
"""

from __future__ import annotations

import torch

from medsight_ray.data.pipeline import STD, PipelineConfig


def epoch_generator(seed: int, rank: int, epoch: int) -> torch.Generator:
    """The augmentation generator of one worker's epoch."""
    return torch.Generator().manual_seed((seed * 1_000_003 + rank * 10_007 + epoch) % (2 ** 63))


def augment(batch: dict[str, torch.Tensor], cfg: PipelineConfig, generator: torch.Generator) -> dict[str, torch.Tensor]:
    """Flip and jitter a training batch; returns a new dict (the input is not changed).

    Per image, independently: a horizontal flip with probability ``cfg.hflip``, a
    vertical flip with ``cfg.vflip``, and brightness/contrast jitter
    ``x * (1 + u) + v / STD`` with ``u, v ~ U(-intensity, intensity)``.
    """
    out = dict(batch)
    images = batch["image"]
    n = images.shape[0]
    # Draw on the CPU generator, then move: the same draws on every device.
    draws = torch.rand(n, 4, generator=generator)
    for axis, (column, p) in enumerate(((1, cfg.hflip), (0, cfg.vflip))):
        flip = (draws[:, column] < p).to(images.device)
        if not bool(flip.any()):
            continue
        dim = -1 if axis == 0 else -2  # width for the horizontal flip, height for the vertical
        pick = flip.view(-1, 1, 1, 1)
        out["image"] = torch.where(pick, out["image"].flip(dim), out["image"])
        if "mask" in out:
            out["mask"] = torch.where(pick, out["mask"].flip(dim), out["mask"])
        if "boxes" in out:
            boxes = out["boxes"].clone()
            lo, hi = (1, 3) if axis == 0 else (2, 4)
            moved = flip.view(-1, 1) & (boxes[..., 0] >= 0)
            boxes[..., lo] = torch.where(moved, 1 - out["boxes"][..., hi], out["boxes"][..., lo])
            boxes[..., hi] = torch.where(moved, 1 - out["boxes"][..., lo], out["boxes"][..., hi])
            out["boxes"] = boxes
    if cfg.intensity > 0:
        gain = 1 + (2 * draws[:, 2] - 1) * cfg.intensity
        shift = (2 * draws[:, 3] - 1) * cfg.intensity / STD
        shape = (-1,) + (1,) * (images.ndim - 1)
        out["image"] = out["image"] * gain.to(images).view(shape) + shift.to(images).view(shape)
    return out
