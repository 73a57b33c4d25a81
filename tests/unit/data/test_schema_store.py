"""Dataset layout, metadata and streaming writer/reader."""

from __future__ import annotations

from pathlib import Path

import pyarrow.parquet as pq
import pytest

from medsight_ray.data.schema import VINDR_CONCEPTS, DatasetInfo
from medsight_ray.data.store import DatasetWriter, list_dataset, read_info
from medsight_ray.errors import DataError


def test_info_round_trips_and_rejects_unknown_keys() -> None:
    info = DatasetInfo("concepts", "L", VINDR_CONCEPTS, ("No finding",), max_boxes=3, source="x")
    assert DatasetInfo.from_json(info.to_json()) == info
    with pytest.raises(DataError, match="unknown keys.*'colour'"):
        DatasetInfo.from_json('{"task": "grading", "colour": 1}')
    with pytest.raises(DataError, match="unknown task family.*'detection'"):
        DatasetInfo("detection")


def test_writer_streams_rolls_files_and_records_max_boxes(tmp_path: Path) -> None:
    info = DatasetInfo("concepts", "L", ("a", "b"), ("t",))
    writer = DatasetWriter(tmp_path, info, row_group_rows=4, rows_per_file=8)
    rows = []
    for i in range(20):
        boxes = [{"concept": 0, "x_min": 0.1, "y_min": 0.1, "x_max": 0.5, "y_max": 0.5}] * (i % 4)
        rows.append({"image_id": f"i{i}", "patient_id": f"p{i}", "split": "val" if i % 5 == 0 else "train",
                     "image": b"", "concepts": [1, 0], "targets": [0], "boxes": boxes})
    writer.write(rows)
    final = writer.close()
    assert final.max_boxes == 3
    files = list_dataset(tmp_path)
    assert [Path(p).name for p in files.by_split["train"]] == ["train-00000.parquet", "train-00001.parquet"]
    assert sum(pq.read_metadata(p).num_rows for p in files.all_paths) == 20
    assert read_info(files) == final


def test_list_dataset_names_what_is_missing(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="does not exist"):
        list_dataset(tmp_path / "nope")
    (tmp_path / "notes.txt").write_text("x")
    with pytest.raises(DataError, match="no dataset files found.*notes.txt"):
        list_dataset(tmp_path)


def test_file_uri_resolves_like_a_path(synth_dir) -> None:
    path = synth_dir("grading", rows=20)
    assert read_info(list_dataset(f"file://{path}")) == read_info(list_dataset(path))
