"""Import a segmentation dataset of image/mask pairs with matching file names.

    IMAGES/tile_00.png   MASKS/tile_00.png
    ...

Masks are binary: 0 background, anything in {1, 255} foreground. An image without a
mask is an error unless ``allow_missing_masks``; then it is imported with
``has_segmentation`` False (excluded from the loss, never treated as empty) and
counted in the result.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from medsight_ray.data.images import encode_png, read_image_file, resize
from medsight_ray.data.importers.common import image_files, patient_from_name, write_items
from medsight_ray.data.location import Location
from medsight_ray.data.schema import DatasetInfo
from medsight_ray.errors import DataError


def import_pairs(
    images: str | Path | Location,
    masks: str | Path | Location,
    out: str | Path,
    image_size: int = 128,
    mode: str = "L",
    patient_regex: str | None = None,
    allow_missing_masks: bool = False,
    val_fraction: float = 0.2,
    test_fraction: float = 0.0,
    seed: int = 0,
    parallel: bool = False,
) -> DatasetInfo:
    """Write matching image/mask files (local folders or URIs) as a ``segmentation`` dataset at ``out``."""
    images, masks = Location.of(images), Location.of(masks)
    image_by_stem = {p.stem: p for p in image_files(images)}
    mask_by_stem = {p.stem: p for p in image_files(masks)}
    orphans = sorted(set(mask_by_stem) - set(image_by_stem))
    if orphans:
        raise DataError("masks without an image", where=str(masks),
                        expected="an image of the same name for every mask", got=f"{orphans[:5]}")
    unmasked = sorted(set(image_by_stem) - set(mask_by_stem))
    if unmasked and not allow_missing_masks:
        raise DataError("images without a mask", where=str(images),
                        expected="a mask of the same name for every image", got=f"{unmasked[:5]} "
                        f"({len(unmasked)} in all)",
                        fix="add the masks, or pass --allow-missing-masks to import them as unlabelled")
    info = DatasetInfo("segmentation", mode, source=f"medsight_ray import pairs {images} {masks}"
                       + (f" ({len(unmasked)} without mask)" if unmasked else ""))

    def make_row(stem: str) -> dict:
        image = read_image_file(image_by_stem[stem], mode)
        if stem in mask_by_stem:
            raw = read_image_file(mask_by_stem[stem], "L")
            if raw.shape != image.shape[:2]:
                raise DataError("mask size differs from its image", where=str(mask_by_stem[stem]),
                                expected=f"{image.shape[1]}x{image.shape[0]}", got=f"{raw.shape[1]}x{raw.shape[0]}")
            values = set(np.unique(raw).tolist())
            if not values <= {0, 1, 255}:
                raise DataError("mask is not binary", where=str(mask_by_stem[stem]),
                                expected="values in {0, 1, 255}",
                                got=f"{len(values)} distinct values, e.g. {sorted(values)[:5]}")
            mask = (raw > 0).astype(np.uint8) * 255
        else:
            mask = np.zeros(image.shape[:2], dtype=np.uint8)
        return {
            "image_id": stem,
            "image": encode_png(resize(image, image_size)),
            "mask": encode_png(resize(mask, image_size, nearest=True)),
            "has_segmentation": stem in mask_by_stem,
        }

    return write_items(out, info, sorted(image_by_stem), lambda s: patient_from_name(s, patient_regex),
                       make_row, val_fraction, test_fraction, seed, parallel, alias_patients=patient_regex is not None)
