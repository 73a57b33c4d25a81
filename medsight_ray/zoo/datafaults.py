"""Data faults for the pathology zoo: a copy of a dataset, rewritten as a faulty
importer would have written it. The footer (the dataset info) is kept, as the faulty
importer would have computed it; only the faulty column or the row order changes.

Each fault takes the source and destination directories (local paths) and rewrites
every ``{split}-NNNNN.parquet`` file of the source into the destination.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from medsight_ray.data.images import decode_image, encode_png


def rewrite_dataset(src: Path, dst: Path, edit: Callable[[str, pa.Table], pa.Table]) -> Path:
    """Copy a dataset, passing each file's table through ``edit(file name, table)``.

    The footer metadata (the dataset info) is kept, so only what ``edit`` changes
    differs. Returns ``dst``.
    """
    dst.mkdir(parents=True, exist_ok=True)
    for path in sorted(src.glob("*.parquet")):
        pf = pq.ParquetFile(path)
        table = edit(path.name, pf.read())
        with pq.ParquetWriter(dst / path.name, table.schema.remove_metadata()) as writer:
            writer.write_table(table.replace_schema_metadata(None))
            writer.add_key_value_metadata({k: v for k, v in pf.metadata.metadata.items() if k != b"ARROW:schema"})
    return dst


def _split(file_name: str) -> str:
    return file_name.split("-")[0]


def swap_box_xy(src: Path, dst: Path) -> None:
    """Every box written with x and y swapped: (concept, y_min, x_min, y_max, x_max),
    as an importer that read a (row, column) annotation as (x, y) would."""
    def change(name: str, table: pa.Table) -> pa.Table:
        boxes = [[{**b, "x_min": b["y_min"], "y_min": b["x_min"], "x_max": b["y_max"], "y_max": b["x_max"]}
                  for b in row] for row in table.column("boxes").to_pylist()]
        index = table.schema.get_field_index("boxes")
        return table.set_column(index, table.schema.field(index), pa.array(boxes, type=table.schema.field(index).type))
    rewrite_dataset(src, dst, change)


def shift_masks(src: Path, dst: Path, fraction: float = 0.25) -> None:
    """Every mask shifted right and down by ``fraction`` of the image against its image
    (wrapping round), as an importer that cropped images and masks differently would."""
    def change(name: str, table: pa.Table) -> pa.Table:
        masks = []
        for data in table.column("mask").to_pylist():
            mask = decode_image(data, "L", "mask")
            shift = max(1, int(round(fraction * mask.shape[0])))
            masks.append(encode_png(np.roll(mask, (shift, shift), axis=(0, 1))))
        return table.set_column(table.schema.get_field_index("mask"), "mask", pa.array(masks, type=pa.binary()))
    rewrite_dataset(src, dst, change)


def group_by_label(src: Path, dst: Path) -> None:
    """Training rows stored grouped by class (one class folder after another), as a
    user's own export or an importer that keeps the order it found would write them."""
    def change(name: str, table: pa.Table) -> pa.Table:
        return table.take(pc.sort_indices(table, [("label", "ascending")])) if _split(name) == "train" else table
    rewrite_dataset(src, dst, change)


FAULTS: dict[str, Callable[[Path, Path], None]] = {
    "swap_box_xy": swap_box_xy, "shift_masks": shift_masks, "group_by_label": group_by_label,
}
