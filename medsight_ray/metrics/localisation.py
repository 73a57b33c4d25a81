"""CAM localisation quality on boxed data.

For every ground-truth box of concept k on an image, from the sigmoid CAM of k on the
CAM grid:

    pointing hit   the CAM's arg-max cell lies in the box (pointing game)
    energy inside  mean sigmoid CAM over cells in the box
    energy outside mean sigmoid CAM over cells outside every box of k on that image

Reported: ``pointing`` (hit rate, higher is better), ``energy_inside``,
``energy_outside`` and ``energy_ratio`` = inside / outside (> 1 means the CAM is
brighter in the boxes; ≤ 1 is inverted localisation).
"""

from __future__ import annotations

import numpy as np
import torch

from medsight_ray.data.boxes import box_masks


def box_statistics(cams: torch.Tensor, boxes: torch.Tensor) -> np.ndarray:
    """Per real box: (hit, inside energy, outside energy) as (n_boxes, 3) float64.

    Args:
        cams: (B, K, H, W) logits; boxes: (B, N, 5), padding concept < 0.
    """
    b, _, h, w = cams.shape
    inside, outside, valid = box_masks(boxes.to(cams.dtype), h, w)
    if not valid.any():
        return np.zeros((0, 3))
    concept = boxes[..., 0].long().clamp(min=0)
    prob = torch.sigmoid(cams[torch.arange(b, device=cams.device)[:, None], concept])  # (B, N, H, W)
    flat = prob.flatten(2)
    peak = flat.argmax(-1)
    hit = inside.flatten(2).gather(-1, peak[..., None]).squeeze(-1).float()
    e_in = (flat * inside.flatten(2)).sum(-1) / inside.flatten(2).sum(-1).clamp(min=1)
    out_n = outside.flatten(2).sum(-1)
    e_out = (flat * outside.flatten(2)).sum(-1) / out_n.clamp(min=1)
    # A box covering the whole grid has no outside: leave it out of the outside mean.
    e_out = torch.where(out_n > 0, e_out, torch.full_like(e_out, float("nan")))
    stats = torch.stack([hit, e_in, e_out], dim=-1)[valid]
    return stats.detach().cpu().double().numpy()


def localisation_metrics(stats: np.ndarray) -> dict[str, float]:
    """Aggregate :func:`box_statistics` rows of a whole split."""
    if len(stats) == 0:
        return {"pointing": float("nan"), "energy_inside": float("nan"), "energy_outside": float("nan"),
                "energy_ratio": float("nan"), "boxes": 0}
    inside = float(np.mean(stats[:, 1]))
    outside = float(np.nanmean(stats[:, 2])) if np.isfinite(stats[:, 2]).any() else float("nan")
    return {"pointing": float(np.mean(stats[:, 0])), "energy_inside": inside, "energy_outside": outside,
            "energy_ratio": inside / max(outside, 1e-9), "boxes": int(len(stats))}
