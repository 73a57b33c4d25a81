"""Loading torch files that can never run code.

Checkpoints and pretrained weights are read with ``torch.load(weights_only=True)``;
a corrupt or foreign file becomes a :class:`~medsight_ray.errors.ConfigError` that
names it, not a traceback from deep inside torch.
"""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import torch

from medsight_ray.errors import ConfigError


def safe_load(file: Path | io.BytesIO, expected: str, where: str | None = None) -> Any:
    """``torch.load(weights_only=True)`` that turns a corrupt or foreign file into a
    :class:`ConfigError` naming the file (a checkpoint can never run code)."""
    try:
        return torch.load(file, map_location="cpu", weights_only=True)
    except Exception as err:  # torch raises many types for corrupt or foreign files
        raise ConfigError("checkpoint does not load", where=where or str(file),
                          expected=f"{expected} (weights_only=True)",
                          got=f"{type(err).__name__}: {str(err).splitlines()[0][:200]}") from None
