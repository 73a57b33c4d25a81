"""Bbox-guided CAM localisation loss.

For every ground-truth box b of concept k on image i, on the CAM grid (H, W):

    in_b   = cells whose centre lies in the box (at least the cell holding its centre)
    out_b  = cells outside every box of concept k on image i
    p      = sigmoid(cam[i, k])                                     (probabilities)

    mode "mse" (default, the seeds' corrected form):
        L_b = mean_{in_b} (1 - p)^2 + mean_{out_b} p^2
    mode "hinge" (the seeds' original, on raw CAM logits c, with a margin m; m = 0
    reproduces it exactly):
        L_b = mean_{in_b} relu(m - c) + mean_{out_b} relu(c + m)

    L = mean over all real boxes of the batch; 0 when the batch has none.

Shapes: ``cams`` (B, K, H, W) logits; ``boxes`` (B, N, 5) rows ``(concept, x_min,
y_min, x_max, y_max)`` in [0, 1], padding rows with concept < 0. Lower is better:
0 means the CAM is 1 inside every box and 0 outside (mse) or, for the hinge, the CAM
logit is at least m inside and at most -m outside.

What the hinge does (settled by tests, not by reading the code): its gradient raises
the CAM inside the box and lowers it outside, so it is *not* backwards, as seed 001
claimed. With m = 0 it stops pushing as soon as the CAM logit is positive inside and
negative outside: at that point the loss is exactly 0 and gives no gradient, so it
neither sharpens the map nor separates inside from outside beyond the sign.
"""

from __future__ import annotations

from typing import Literal, get_args

import torch

from medsight_ray.data.boxes import box_masks
from medsight_ray.errors import ConfigError

#: The localisation loss forms; the config field ``loss.loc_mode`` has this type.
LocMode = Literal["mse", "hinge"]
MODES: tuple[str, ...] = get_args(LocMode)


def bbox_localisation_loss(cams: torch.Tensor, boxes: torch.Tensor, mode: str = "mse",
                           margin: float = 0.0) -> torch.Tensor:
    """Mean per-box localisation loss (see module docstring); a scalar, lower is better."""
    if mode not in MODES:
        raise ConfigError("unknown localisation loss mode", where="loss.loc_mode",
                          expected=f"one of {list(MODES)}", got=repr(mode))
    b, _, h, w = cams.shape
    inside, outside, valid = box_masks(boxes.to(cams.dtype), h, w)
    if not valid.any():
        return cams.sum() * 0.0
    concept = boxes[..., 0].long().clamp(min=0)
    cam = cams[torch.arange(b, device=cams.device)[:, None], concept]  # (B, N, H, W)
    if mode == "hinge":
        pen_in, pen_out = torch.relu(margin - cam), torch.relu(cam + margin)
    else:
        p = torch.sigmoid(cam)
        pen_in, pen_out = (1 - p) ** 2, p**2
    inside_f, outside_f = inside.to(cams.dtype), outside.to(cams.dtype)
    mean_in = (pen_in * inside_f).sum((-2, -1)) / inside_f.sum((-2, -1)).clamp(min=1)
    mean_out = (pen_out * outside_f).sum((-2, -1)) / outside_f.sum((-2, -1)).clamp(min=1)
    return (mean_in + mean_out)[valid].mean()
