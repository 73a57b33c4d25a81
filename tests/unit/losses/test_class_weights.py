"""Class weights: the bounds hold on the weights used, and they average 1."""

from __future__ import annotations

import numpy as np
import pytest

from medsight_ray.errors import ConfigError
from medsight_ray.losses.class_weights import class_weights


def test_the_seeds_clamp_then_renormalise_breaks_its_own_bounds() -> None:
    raw = np.array([0.47, 1.44, 0.57, 1.52])
    clamped = np.clip(raw, 0.75, 1.5)
    seed_weights = clamped / clamped.sum() * 4
    assert seed_weights.min() < 0.75  # the seed's recipe: 0.68 < 0.75
    assert not np.allclose(seed_weights, [0.75, 1.0, 0.75, 1.0])  # nor does it give the seed's claim


@pytest.mark.parametrize("counts", [[410, 130, 330, 130], [900, 10, 80, 10], [5, 5, 5, 5], [100, 0, 50, 7]])
@pytest.mark.parametrize("bounds", [(0.75, 1.5), (0.5, 3.0), (0.0, float("inf"))])
def test_bounds_hold_and_mean_is_one(counts: list[int], bounds: tuple[float, float]) -> None:
    w = class_weights(counts, power=1.5, w_min=bounds[0], w_max=bounds[1])
    assert w.min() >= bounds[0] - 1e-12 and w.max() <= bounds[1] + 1e-12
    assert w.mean() == pytest.approx(1.0, abs=1e-9)
    # Rarer classes never weigh less than commoner ones.
    order = np.argsort(counts)
    assert np.all(np.diff(w[order]) <= 1e-12)


def test_hand_computed_cases() -> None:
    # Inverse frequency, no bounds: raw = N / (C n_c) = [0.5, 1.5] already averages 1.
    assert class_weights([300, 100]) == pytest.approx([2 / 3 * 0.75, 2 / 3 * 2.25])
    assert class_weights([300, 100], power=0) == pytest.approx([1.0, 1.0])
    # With bounds [0.75, 1.5]: raw [0.5, 1.5] -> clip(s*raw) mean 1 -> s = 4/3: [0.667->0.75, 1.25].
    assert class_weights([300, 100], w_min=0.75, w_max=1.5) == pytest.approx([0.75, 1.25])


def test_bounds_that_cannot_average_one_are_rejected() -> None:
    with pytest.raises(ConfigError, match="class_weight_min <= 1 <= class_weight_max"):
        class_weights([1, 2], w_min=1.2, w_max=2.0)
