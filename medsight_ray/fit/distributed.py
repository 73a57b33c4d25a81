"""Reductions across Train workers. Only rank 0's report reaches Tune, so every
epoch metric is computed from statistics gathered from all workers first."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch.distributed as dist


def world() -> tuple[int, int]:
    """(rank, world size); (0, 1) outside a process group."""
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


def all_gather(obj: Any) -> list[Any]:
    """Every worker's ``obj``, in rank order, on every worker."""
    rank, size = world()
    if size == 1:
        return [obj]
    out: list[Any] = [None] * size
    dist.all_gather_object(out, obj)
    return out


def gather_arrays(parts: dict[str, list[np.ndarray]]) -> dict[str, np.ndarray]:
    """Concatenate per-batch arrays locally, then across workers (row order: by rank)."""
    local = {k: np.concatenate(v) if v else np.zeros((0,)) for k, v in parts.items()}
    gathered = all_gather(local)
    keys = sorted(set().union(*(g.keys() for g in gathered)))
    return {k: np.concatenate([g[k] for g in gathered if k in g and g[k].size]) if any(
        k in g and g[k].size for g in gathered) else np.zeros((0,)) for k in keys}


def mean_across(values: dict[str, float]) -> dict[str, float]:
    """Mean of scalar dicts across workers (keys of rank 0)."""
    gathered = all_gather(values)
    return {k: float(np.mean([g[k] for g in gathered if k in g])) for k in gathered[0]}
