"""``data import`` decodes in parallel with Ray Data and writes exactly what the serial
importer writes: same files, byte for byte (rows, order, boxes, split, footer)."""

from __future__ import annotations

import shutil
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from medsight_ray.data.importers.folders import import_class_folders
from medsight_ray.data.importers.pairs import import_pairs
from medsight_ray.data.importers.vindr import import_vindr
from medsight_ray.errors import DataError
from tests.conftest import FIXTURES

pytestmark = [pytest.mark.ray, pytest.mark.usefixtures("ray_local")]


def _files(folder: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir()) if p.is_file()}


def _import(kind: str, out: Path, parallel: bool, images: tuple[Path, Path] | None = None) -> dict[str, int]:
    """Import the fixture of ``kind``; returns the import's counts (vindr's; none for the others)."""
    if kind == "folders":
        import_class_folders(FIXTURES / "digits4", out, image_size=32, mode="L", seed=3, parallel=parallel)
    elif kind == "pairs":
        import_pairs(FIXTURES / "nuclei" / "images", FIXTURES / "nuclei" / "masks", out, image_size=32, seed=3,
                     parallel=parallel)
    else:
        folder, sizes = images
        return import_vindr(FIXTURES / "vindr_sample.csv", folder, out, image_size=32, sizes=sizes,
                            val_fraction=0.3, seed=3, parallel=parallel)[1]
    return {}


@pytest.mark.parametrize("kind", ["folders", "pairs", "vindr"])
def test_the_parallel_import_writes_the_serial_import_byte_for_byte(kind: str, vindr_images, tmp_path) -> None:
    serial_counts = _import(kind, tmp_path / "serial", False, vindr_images)
    parallel_counts = _import(kind, tmp_path / "parallel", True, vindr_images)
    serial, parallel = _files(tmp_path / "serial"), _files(tmp_path / "parallel")
    assert serial.keys() == parallel.keys() and any(name.endswith(".parquet") for name in serial)
    assert serial == parallel
    # The merged boxes the import reports are those it wrote, on either path.
    written = sum(len(r["boxes"]) for p in (tmp_path / "parallel").glob("*.parquet")
                  for r in pq.read_table(p).to_pylist()) if kind == "vindr" else 0
    assert parallel_counts == serial_counts and parallel_counts.get("boxes", 0) == written


def test_a_bad_image_in_a_parallel_import_names_its_file(tmp_path) -> None:
    root = tmp_path / "classes"
    shutil.copytree(FIXTURES / "digits4", root)
    broken = root / "two" / "two_003.png"
    broken.write_bytes(b"not a png")
    with pytest.raises(DataError, match="two_003.png.*image file does not read"):
        import_class_folders(root, tmp_path / "out", image_size=32, mode="L", parallel=True)
