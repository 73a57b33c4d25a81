"""Importer CSVs are read as pandas reads them from their names, compressed or not, and a
file that is not such a CSV is a clear exit 2 that writes nothing.

The inputs are real VinDr-CXR rows (``tests/fixtures/vindr_train_600.csv``, 4,312 rows
of 600 images, and ``vindr_sample.csv``, every row of 9 of them), compressed here with
the standard library and ``zstandard``, so each compressed file holds exactly the plain
file's bytes.
"""

from __future__ import annotations

import bz2
import gzip
import lzma
from collections.abc import Callable
from pathlib import Path

import pandas as pd
import pyarrow.parquet as pq
import pytest

from medsight_ray.data import __main__ as data_cli
from medsight_ray.data.csvfile import read_csv
from medsight_ray.data.importers.vindr import CSV_COLUMNS, import_vindr
from medsight_ray.data.location import Location
from medsight_ray.errors import DataError
from tests.conftest import COMPRESS, FIXTURES, compressed, run_cli

CSV = FIXTURES / "vindr_sample.csv"
FULL = FIXTURES / "vindr_train_600.csv"


@pytest.mark.parametrize("suffix", sorted(COMPRESS))
def test_every_compression_reads_the_rows_of_the_plain_file(suffix: str, tmp_path: Path) -> None:
    packed = compressed(FULL, tmp_path, suffix)
    assert len(packed.read_bytes()) < len(FULL.read_bytes()) / 2
    frame = read_csv(Location.of(packed), "annotations", CSV_COLUMNS, dtype={"image_id": str})
    plain = read_csv(Location.of(FULL), "annotations", CSV_COLUMNS, dtype={"image_id": str})
    assert len(plain) == 4312 and plain.image_id.nunique() == 600
    pd.testing.assert_frame_equal(frame, plain)


def _rows(folder: Path) -> dict[str, list[dict]]:
    return {f.name: pq.read_table(f).to_pylist() for f in sorted(folder.glob("*.parquet"))}


def test_gzipped_annotations_and_sizes_import_the_same_dataset(vindr_images, tmp_path: Path) -> None:
    folder, sizes = vindr_images
    plain_info, plain_counts = import_vindr(CSV, folder, tmp_path / "plain", image_size=32, sizes=sizes)
    gz_info, gz_counts = import_vindr(compressed(CSV, tmp_path, ".gz"), folder, tmp_path / "gz", image_size=32,
                                      sizes=compressed(sizes, tmp_path, ".gz"))
    assert gz_counts == plain_counts and plain_counts["boxes"] > 0
    plain_rows, gz_rows = _rows(tmp_path / "plain"), _rows(tmp_path / "gz")
    # Every row, box, split file and PNG byte is the same; the footers differ only in
    # the source line, which names the file read.
    assert plain_rows.keys() == gz_rows.keys() and plain_rows == gz_rows
    assert "vindr_sample.csv.gz" in gz_info.source
    assert {**gz_info.__dict__, "source": ""} == {**plain_info.__dict__, "source": ""}


#: name -> (the file's name, its bytes from the plain CSV's, what the message must say)
BROKEN: dict[str, tuple[str, Callable[[bytes], bytes], list[str]]] = {
    "binary": ("a.csv", lambda b: bytes(range(256)) * 8,
               ["VinDr-CXR annotations CSV cannot be read as a CSV", "does not parse as a CSV"]),
    "latin1": ("a.csv", lambda b: b.replace(b"Nodule/Mass", "Nodule/Mass é".encode("latin-1")),
               ["VinDr-CXR annotations CSV cannot be read as a CSV", "bytes that are not UTF-8 text"]),
    "truncated_gz": ("a.csv.gz", lambda b: gzip.compress(b)[:200], ["gzip data that does not decompress",
                                                                    "EOFError"]),
    "gz_named_csv": ("a.csv", lambda b: gzip.compress(b), ["gzip data under a name without the .gz suffix"]),
    "bad_zip": ("a.csv.zip", lambda b: b"PK\x03\x04" + b[:100], ["zip data that does not decompress"]),
    "empty": ("a.csv", lambda b: b"", ["an empty file"]),
    "box_not_a_number": ("a.csv", lambda b: b.replace(b"R10,691.0,", b"R10,69l.0,"),
                         ["box coordinate is not a number", "line 4 column 'x_min'", "'69l.0'"]),
    "wrong_columns": ("a.csv.xz", lambda b: lzma.compress(b"name,size\nx,1\n"),
                      ["VinDr-CXR annotations CSV lacks columns", "'image_id'", "got columns ['name', 'size']"]),
}


@pytest.mark.parametrize("case", sorted(BROKEN))
def test_an_unreadable_csv_exits_2_naming_the_file_and_writes_nothing(case: str, vindr_images, tmp_path: Path,
                                                                      capsys) -> None:
    folder, _ = vindr_images
    name, make, fragments = BROKEN[case]
    bad = tmp_path / name
    bad.write_bytes(make(CSV.read_bytes()))
    out = tmp_path / "out"
    code, text = run_cli(data_cli.cli, "medsight_ray.data",
                         ["import", "vindr", "--csv", str(bad), "--images", str(folder), "--out", str(out),
                          "--serial", "--image-size", "32"], capsys)
    assert code == 2, text
    assert "Traceback" not in text and [line[:6] for line in text.splitlines()].count("error:") == 1, text
    for fragment in [str(bad), *fragments]:
        assert fragment in text, f"{fragment!r} not in {text!r}"
    assert not out.exists()


def test_the_sizes_and_image_label_csvs_go_through_the_same_reader(vindr_images, tmp_path: Path) -> None:
    folder, sizes = vindr_images
    broken = tmp_path / "sizes.csv.gz"
    broken.write_bytes(gzip.compress(sizes.read_bytes())[:-12])  # the trailer cut off
    with pytest.raises(DataError, match="image sizes CSV cannot be read as a CSV"):
        import_vindr(CSV, folder, tmp_path / "o1", image_size=32, sizes=broken)
    no_height = tmp_path / "sizes2.csv.bz2"
    no_height.write_bytes(bz2.compress(b"image_id,width\nx,10\n"))
    with pytest.raises(DataError, match=r"image sizes CSV lacks columns \['height'\]"):
        import_vindr(CSV, folder, tmp_path / "o2", image_size=32, sizes=no_height)
    labels = tmp_path / "image_labels.csv.gz"
    labels.write_bytes(gzip.compress(b"image_id,rad_id,Other\n"))
    with pytest.raises(DataError, match="VinDr image-label CSV lacks columns"):
        import_vindr(CSV, folder, tmp_path / "o3", image_size=32, image_labels=labels)
    assert not any((tmp_path / o).exists() for o in ("o1", "o2", "o3"))


def test_no_importer_reads_a_csv_except_through_the_one_reader() -> None:
    package = Path(__file__).resolve().parents[3] / "medsight_ray"
    readers = {p.relative_to(package).as_posix() for p in package.rglob("*.py")
               if any(call in p.read_text() for call in ("pd.read_csv", "pandas.read_csv", "pyarrow.csv"))}
    assert readers == {"data/csvfile.py"}
