"""``data import`` reads its inputs from and writes its dataset to ``s3://``, tested
offline against a local S3-compatible server (moto's, on 127.0.0.1): the rows equal
those of the same import from and to local folders. ``gs://`` goes through the same
pyarrow filesystem layer (``FileSystem.from_uri``) but has no local stand-in here, so
it is untested.

The URIs carry the server's endpoint and keys (``s3://KEY:SECRET@bucket/key?
endpoint_override=HOST:PORT&scheme=http``), which is how a MinIO or other S3-compatible
store is named: they travel with the filesystem into Ray Data's tasks, whose processes
have no AWS settings of their own.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pyarrow.fs as pafs
import pyarrow.parquet as pq
import pytest

from medsight_ray.data.checks import check_dataset
from medsight_ray.data.csvfile import COMPRESSIONS, read_csv
from medsight_ray.data.importers.folders import import_class_folders
from medsight_ray.data.importers.pairs import import_pairs
from medsight_ray.data.importers.vindr import CSV_COLUMNS, import_vindr
from medsight_ray.data.location import Location
from medsight_ray.data.schema import METADATA_KEY, DatasetInfo
from medsight_ray.errors import DataError
from tests.conftest import BUCKET, COMPRESS, FIXTURES, compressed, kill_mid_write
from tests.conftest import upload as _upload

pytestmark = [pytest.mark.ray, pytest.mark.usefixtures("ray_local")]
ROOT = Path(__file__).resolve().parents[2]
COMPRESSION_NAMES = {suffix: name for name, suffix in COMPRESSIONS.items()}


def _dataset(uri: str) -> tuple[dict[str, list[dict]], DatasetInfo]:
    """Every file's rows, by file name, and the dataset info of its footer."""
    fs, root = pafs.FileSystem.from_uri(uri) if "://" in uri else (pafs.LocalFileSystem(), uri)
    files = sorted(i.path for i in fs.get_file_info(pafs.FileSelector(root)) if i.path.endswith(".parquet"))
    rows, infos = {}, set()
    for path in files:
        with fs.open_input_file(path) as fh:
            parquet = pq.ParquetFile(fh)
            rows[path.rsplit("/", 1)[1]] = parquet.read().to_pylist()
            infos.add(parquet.metadata.metadata[METADATA_KEY])
    (info,) = infos
    return rows, DatasetInfo.from_json(info)


def test_folders_from_s3_to_s3_in_parallel_equal_the_local_import(s3, tmp_path) -> None:
    source = _upload(s3, FIXTURES / "digits4", "in/digits4")
    import_class_folders(source, s3("out/digits4"), image_size=32, mode="L", seed=3, parallel=True)
    import_class_folders(FIXTURES / "digits4", tmp_path / "local", image_size=32, mode="L", seed=3)
    remote, remote_info = _dataset(s3("out/digits4"))
    local, local_info = _dataset(str(tmp_path / "local"))
    assert remote.keys() == local.keys() and remote == local
    # The footers differ only in where the images came from, and name it without the keys.
    assert remote_info.source == f"medsight_ray import folders s3://{BUCKET}/in/digits4"
    assert {**remote_info.__dict__, "source": ""} == {**local_info.__dict__, "source": ""}
    assert check_dataset(s3("out/digits4")).ok


def test_pairs_and_vindr_read_their_inputs_from_s3(s3, vindr_images, tmp_path) -> None:
    images = _upload(s3, FIXTURES / "nuclei" / "images", "in/nuclei/images")
    masks = _upload(s3, FIXTURES / "nuclei" / "masks", "in/nuclei/masks")
    import_pairs(images, masks, tmp_path / "pairs-s3", image_size=32, seed=3, parallel=True)
    import_pairs(FIXTURES / "nuclei" / "images", FIXTURES / "nuclei" / "masks", tmp_path / "pairs", image_size=32,
                 seed=3)
    assert _dataset(str(tmp_path / "pairs-s3"))[0] == _dataset(str(tmp_path / "pairs"))[0]
    folder, sizes = vindr_images  # real DICOMs and PNGs; the DICOM headers are read by byte range
    # Gzipped, as a large annotation CSV often sits in a bucket.
    csv = _upload(s3, compressed(FIXTURES / "vindr_sample.csv", tmp_path, ".gz"), "in/vindr/annotations.csv.gz")
    remote_images = _upload(s3, folder, "in/vindr/images")
    remote_sizes = _upload(s3, compressed(sizes, tmp_path, ".xz"), "in/vindr/sizes.csv.xz")
    info, counts = import_vindr(csv, remote_images, tmp_path / "vindr-s3", image_size=32, sizes=remote_sizes,
                                val_fraction=0.3, seed=3)
    local_info, local_counts = import_vindr(FIXTURES / "vindr_sample.csv", folder, tmp_path / "vindr",
                                            image_size=32, sizes=sizes, val_fraction=0.3, seed=3)
    assert counts == local_counts and counts["boxes"] > 0
    assert _dataset(str(tmp_path / "vindr-s3"))[0] == _dataset(str(tmp_path / "vindr"))[0]


def _objects(uri: str) -> dict[str, bytes]:
    """Every object under ``uri``, by key below it."""
    fs, root = pafs.FileSystem.from_uri(uri)
    found = {}
    for info in fs.get_file_info(pafs.FileSelector(root, recursive=True)):
        if info.type == pafs.FileType.File:
            with fs.open_input_file(info.path) as fh:
                found[info.path[len(root) + 1:]] = fh.read()
    return found


def test_a_failed_or_killed_import_to_s3_leaves_the_previous_dataset_byte_identical(s3, tmp_path) -> None:
    out = s3("atomic/digits")
    import_class_folders(FIXTURES / "digits4", out, image_size=16, mode="L", seed=1)
    before = _objects(out)
    assert any(k.startswith("train-") for k in before)
    broken = tmp_path / "digits"
    shutil.copytree(FIXTURES / "digits4", broken)
    next((broken / "three").glob("*.png")).write_bytes(b"not a png")
    with pytest.raises(DataError):
        import_class_folders(broken, out, image_size=16, mode="L", seed=1)
    assert _objects(out) == before
    # An S3 object appears only when its upload completes, so a killed writer's open
    # files never land; its staging prefix is cleared by the next writer.
    kill_mid_write(out, out)
    assert {k: v for k, v in _objects(out).items() if not k.startswith(".partial-")} == before


@pytest.mark.parametrize("suffix", sorted(COMPRESS))
def test_every_compression_reads_from_s3_as_from_disk(suffix: str, s3, tmp_path) -> None:
    plain = FIXTURES / "vindr_train_600.csv"
    remote = Location.of(_upload(s3, compressed(plain, tmp_path, suffix), f"csv/annotations.csv{suffix}"))
    frame = read_csv(remote, "annotations", CSV_COLUMNS, dtype={"image_id": str})
    pd.testing.assert_frame_equal(frame, read_csv(Location.of(plain), "annotations", CSV_COLUMNS,
                                                  dtype={"image_id": str}))
    truncated = tmp_path / f"cut.csv{suffix}"
    truncated.write_bytes(compressed(plain, tmp_path, suffix).read_bytes()[:4000])
    with pytest.raises(DataError, match=f"cannot be read as a CSV; .* got {COMPRESSION_NAMES[suffix]} data"):
        read_csv(Location.of(_upload(s3, truncated, f"csv/cut.csv{suffix}")), "annotations", CSV_COLUMNS)


def test_the_cli_imports_from_and_to_s3_and_names_a_missing_input_before_starting(s3, tmp_path) -> None:
    source = _upload(s3, FIXTURES / "digits4", "cli/digits4")
    run = subprocess.run([sys.executable, "-m", "medsight_ray.data", "import", "folders", "--root", source,
                          "--out", s3("cli/out"), "--image-size", "32", "--mode", "L", "--serial"],
                         cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stderr
    assert "OK: usable for training" in run.stdout and "testing:testing" not in run.stdout + run.stderr
    missing = subprocess.run([sys.executable, "-m", "medsight_ray.data", "import", "folders", "--root",
                              s3("cli/nothing"), "--out", str(tmp_path / "o")],
                             cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert missing.returncode == 2 and "Traceback" not in missing.stderr
    assert f"--root s3://{BUCKET}/cli/nothing" in missing.stderr and "names no folder" in missing.stderr
    assert "testing:testing" not in missing.stderr and not (tmp_path / "o").exists()
