"""The patient split rule: every image of a patient lands in the same split.

Patients are ordered by a salted SHA-1 of their id, which is stable across machines
and Python versions (unlike ``hash``). The first ``round(n * test_fraction)`` patients
go to ``test``, the next ``round(n * val_fraction)`` to ``val``, the rest to ``train``.
With at least two patients, ``val`` always gets at least one, so training always has
a validation split to report on.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable

from medsight_ray.errors import ConfigError


def assign_splits(
    patient_ids: Iterable[str],
    val_fraction: float = 0.2,
    test_fraction: float = 0.0,
    seed: int = 0,
) -> dict[str, str]:
    """Map each distinct patient id to ``train``, ``val`` or ``test``.

    Args:
        patient_ids: patient ids, repeats allowed.
        val_fraction: share of patients (not images) for validation, in [0, 1).
        test_fraction: share of patients for test, in [0, 1).
        seed: salt; another seed gives another, equally valid, split.

    Returns:
        patient id → split name.
    """
    if not (0 <= val_fraction < 1 and 0 <= test_fraction < 1 and val_fraction + test_fraction < 1):
        raise ConfigError(
            "invalid split fractions", where="val_fraction/test_fraction",
            expected="each in [0, 1) with a sum below 1",
            got=f"val={val_fraction}, test={test_fraction}",
        )
    unique = sorted(set(patient_ids))
    order = sorted(unique, key=lambda p: hashlib.sha1(f"{seed}:{p}".encode()).hexdigest())
    n = len(order)
    n_test = round(n * test_fraction)
    n_val = round(n * val_fraction)
    if n >= 2 and n_val == 0 and val_fraction > 0:
        n_val = 1
    if n_test + n_val >= n and n >= 2:
        n_test = max(0, n - n_val - 1)
    out: dict[str, str] = {}
    for i, pid in enumerate(order):
        out[pid] = "test" if i < n_test else "val" if i < n_test + n_val else "train"
    return out


def fold_of(patient_id: str, folds: int, seed: int = 0) -> int:
    """Cross-validation fold (0 .. folds - 1) of a patient: stable, by patient."""
    return int(hashlib.sha1(f"fold:{seed}:{patient_id}".encode()).hexdigest(), 16) % folds
