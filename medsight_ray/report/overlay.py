"""A figure of an image beside heat maps over it (CAMs, foreground probability)."""

from __future__ import annotations

from pathlib import Path

import numpy as np


def overlay(image: np.ndarray, maps: list[tuple[str, np.ndarray]], path: Path,
            boxes: list[tuple[float, float, float, float]] = ()) -> None:
    """Save the image beside one panel per (title, map in [0, 1] at image size).

    ``boxes`` (x_min, y_min, x_max, y_max in [0, 1]) are drawn on every panel.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(maps) + 1, figsize=(3 * (len(maps) + 1), 3.2))
    gray = image if image.ndim == 2 else image.mean(-1)
    axes[0].imshow(image, cmap="gray" if image.ndim == 2 else None)
    axes[0].set_title("image")
    for ax, (title, heat) in zip(axes[1:], maps):
        ax.imshow(gray, cmap="gray")
        ax.imshow(heat, cmap="jet", alpha=0.45, vmin=0, vmax=1)
        ax.set_title(title, fontsize=8)
    size = image.shape[0]
    for ax in axes:
        for x0, y0, x1, y1 in boxes:
            ax.add_patch(plt.Rectangle((x0 * size - 0.5, y0 * size - 0.5), (x1 - x0) * size, (y1 - y0) * size,
                                       fill=False, edgecolor="lime", linewidth=1.2))
        ax.axis("off")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
