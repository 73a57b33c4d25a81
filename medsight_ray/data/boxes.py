"""Box geometry on a grid: which cells of an (H, W) map lie inside each box.

Boxes are the dataset's normalised ``(concept, x_min, y_min, x_max, y_max)`` rows
(see the README's column table); both the bbox loss and the localisation metrics
rasterise them the same way, so it lives with the data layout they share.
"""

from __future__ import annotations

import torch


def box_masks(boxes: torch.Tensor, height: int, width: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Rasterise boxes onto the CAM grid.

    Args:
        boxes: (B, N, 5) rows ``(concept, x_min, y_min, x_max, y_max)`` in [0, 1];
            padding rows have concept < 0.

    Returns:
        inside: (B, N, H, W) bool, cells in each box;
        outside: (B, N, H, W) bool, cells outside every box of the same concept and image;
        valid: (B, N) bool, real (non-padding) boxes.
    """
    valid = boxes[..., 0] >= 0
    ys = (torch.arange(height, device=boxes.device, dtype=boxes.dtype) + 0.5) / height
    xs = (torch.arange(width, device=boxes.device, dtype=boxes.dtype) + 0.5) / width
    x0, y0, x1, y1 = (boxes[..., i, None] for i in range(1, 5))  # (B, N, 1)
    in_x = (xs >= x0) & (xs <= x1)  # (B, N, W)
    in_y = (ys >= y0) & (ys <= y1)  # (B, N, H)
    inside = in_y[..., :, None] & in_x[..., None, :]
    # A box smaller than a cell still owns the cell holding its centre.
    cy = ((y0 + y1) / 2 * height).long().clamp(0, height - 1).squeeze(-1)
    cx = ((x0 + x1) / 2 * width).long().clamp(0, width - 1).squeeze(-1)
    centre = torch.zeros_like(inside)
    b_idx, n_idx = torch.meshgrid(torch.arange(boxes.shape[0], device=boxes.device),
                                  torch.arange(boxes.shape[1], device=boxes.device), indexing="ij")
    centre[b_idx, n_idx, cy, cx] = True
    inside = (inside | centre) & valid[..., None, None]
    concept = boxes[..., 0].long()
    same = (concept[:, :, None] == concept[:, None, :]) & valid[:, :, None] & valid[:, None, :]  # (B, N, N)
    union = torch.einsum("bnm,bmhw->bnhw", same.float(), inside.float()) > 0
    return inside, ~union & valid[..., None, None], valid
