"""What every importer shares: file discovery, patient ids, splitting and writing."""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TypeVar

from medsight_ray.data.schema import DatasetInfo
from medsight_ray.data.splits import assign_splits
from medsight_ray.data.store import DatasetWriter
from medsight_ray.errors import ConfigError, DataError

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".dcm", ".dicom")
Item = TypeVar("Item")


def image_files(folder: Path) -> list[Path]:
    """Image files directly in ``folder``, sorted by name."""
    if not folder.is_dir():
        raise DataError("folder does not exist", where=str(folder), expected="a folder of images",
                        got="no such directory")
    return sorted(p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)


def patient_from_name(stem: str, regex: str | None) -> str:
    """Patient id from a file stem: group 1 of ``regex``, or the stem itself.

    Without a regex every image is its own patient, which is right only when each
    patient has one image; give a regex when file names encode the patient.
    """
    if regex is None:
        return stem
    match = re.search(regex, stem)
    if not match or not match.groups():
        raise ConfigError("patient regex does not match a file name", where=f"file {stem!r}",
                          expected=f"a match of {regex!r} with one group", got="no match",
                          fix="adjust --patient-regex, e.g. '^(\\w+)_' for 'P001_left.png'")
    return match.group(1)


def write_items(
    out: str | Path,
    info: DatasetInfo,
    items: Sequence[Item],
    patient_of: Callable[[Item], str],
    make_row: Callable[[Item], dict],
    val_fraction: float,
    test_fraction: float,
    seed: int,
) -> DatasetInfo:
    """Split ``items`` by patient and write one row per item; returns the final info."""
    if not items:
        raise DataError("nothing to import", where=str(out), expected="at least two images", got="none")
    patients = [patient_of(item) for item in items]
    split_of = assign_splits(patients, val_fraction, test_fraction, seed)
    writer = DatasetWriter(out, info)
    for item, pid in zip(items, patients):
        row = make_row(item)
        row["patient_id"] = pid
        row["split"] = split_of[pid]
        writer.write([row])
    return writer.close()
