"""Learnable synthetic datasets for every task, with knobs for the seeds' failures."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import fields
from pathlib import Path

import numpy as np

from medsight_ray.data.schema import CATARACT_CLASSES, VINDR_CONCEPTS, VINDR_TARGETS, DatasetInfo
from medsight_ray.data.splits import assign_splits
from medsight_ray.data.store import DatasetWriter
from medsight_ray.data.synth import concepts, grading, segmentation
from medsight_ray.data.synth.knobs import Knobs
from medsight_ray.errors import ConfigError

__all__ = ["Knobs", "synthesize"]

_ROWS = {"concepts": concepts.rows, "grading": grading.rows, "segmentation": segmentation.rows}


def _info(task: str, seed: int, knobs: Knobs) -> DatasetInfo:
    changed = {f.name: getattr(knobs, f.name) for f in fields(knobs) if getattr(knobs, f.name) != f.default}
    source = f"medsight_ray synth seed={seed}" + (f" knobs={changed}" if changed else "")
    if task == "concepts":
        return DatasetInfo("concepts", "L", VINDR_CONCEPTS, VINDR_TARGETS, source=source)
    if task == "grading":
        names = CATARACT_CLASSES if len(knobs.class_priors) == 4 else tuple(
            f"class_{i}" for i in range(len(knobs.class_priors)))
        return DatasetInfo("grading", "RGB", class_names=names, source=source)
    return DatasetInfo("segmentation", "L", source=source)


def synthesize(
    task: str,
    out: str | Path,
    rows: int = 1000,
    image_size: int = 64,
    seed: int = 0,
    knobs: Knobs | None = None,
    val_fraction: float = 0.2,
    test_fraction: float = 0.0,
) -> DatasetInfo:
    """Write a synthetic dataset of ``task`` to ``out``; deterministic for ``seed``.

    Returns:
        the dataset info written into the files.
    """
    if task not in _ROWS:
        raise ConfigError("unknown task", where="--task", expected=f"one of {sorted(_ROWS)}", got=repr(task))
    if rows < 2 or image_size < 16:
        raise ConfigError("dataset too small", where="--rows/--image-size",
                          expected="rows >= 2 and image size >= 16", got=f"rows={rows}, size={image_size}")
    knobs = knobs or Knobs()
    if knobs.zero_label_column is not None and knobs.zero_label_column not in VINDR_CONCEPTS:
        raise ConfigError("unknown concept for zero_label_column", where="knob 'zero_label_column'",
                          expected=f"one of {list(VINDR_CONCEPTS)}", got=repr(knobs.zero_label_column))
    # Patients own runs of one to three consecutive rows (follow-up studies); every
    # id is needed up front because the split rule looks at all patients at once.
    lengths = np.random.default_rng([seed, 0]).integers(1, 4, size=rows)
    owner = np.searchsorted(np.cumsum(lengths), np.arange(rows), side="right")
    patients = [f"P{int(p):06d}" for p in owner]
    split_of = assign_splits(patients, val_fraction, test_fraction, seed)
    with DatasetWriter(out, _info(task, seed, knobs)) as writer:
        writer.write(_with_split(_ROWS[task](rows, image_size, seed, knobs), patients, split_of))
        return writer.close()


def _with_split(rows: Iterator[dict], patients: list[str], split_of: dict[str, str]) -> Iterator[dict]:
    for i, row in enumerate(rows):
        row["patient_id"] = patients[i]
        row["split"] = split_of[patients[i]]
        yield row
