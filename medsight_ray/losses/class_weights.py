"""Clamped inverse-frequency class weights whose bounds hold on the weights used.

Seed 003 clamped raw weights to [min, max] and then renormalised them to sum to the
number of classes. That breaks the bounds it just set: its own example, [0.47, 1.44,
0.57, 1.52] clamped to [0.75, 1.5] is [0.75, 1.44, 0.75, 1.5], and renormalised to
sum 4 it is [0.68, 1.30, 0.68, 1.35]: two weights below 0.75 again. (The seed's
claimed result, [0.75, 1.00, 0.75, 1.00], follows from neither step.)

Our semantics: raw_c = (N / (C · n_c)) ** power (1 for a balanced set), and

    w_c = clip(s · raw_c, w_min, w_max)   with s > 0 chosen so that mean_c w_c = 1.

So every weight used lies in [w_min, w_max], the weights average exactly 1 (sum C,
the scale of an unweighted loss), and the order of the raw weights is kept. ``s`` is
found by bisection (mean_c w_c is monotone in s). It exists when w_min ≤ 1 ≤ w_max.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from medsight_ray.errors import ConfigError


def class_weights(counts: Sequence[int], power: float = 1.0, w_min: float = 0.0,
                  w_max: float = float("inf")) -> np.ndarray:
    """Per-class weights (C,), float64, mean 1, each in [w_min, w_max].

    Args:
        counts: training rows per class; a class with 0 rows gets the largest weight.
        power: 0 = uniform, 1 = inverse frequency, > 1 stronger.
    """
    if not w_min <= 1.0 <= w_max:
        raise ConfigError("class-weight bounds cannot average 1", where="class_weight_min/max",
                          expected="class_weight_min <= 1 <= class_weight_max", got=f"[{w_min}, {w_max}]")
    n = np.asarray(counts, dtype=np.float64)
    raw = (n.sum() / (len(n) * np.maximum(n, 0.5))) ** power
    lo, hi = 0.0, 1.0
    while np.clip(hi * raw, w_min, w_max).mean() < 1.0:
        hi *= 2
        if hi > 1e12:
            break
    for _ in range(200):
        mid = (lo + hi) / 2
        if np.clip(mid * raw, w_min, w_max).mean() < 1.0:
            lo = mid
        else:
            hi = mid
    return np.clip(hi * raw, w_min, w_max)
