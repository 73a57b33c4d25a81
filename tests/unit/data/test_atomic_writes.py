"""Nothing lost: a dataset is written beside the one it replaces and swapped in only when
whole, so a failed or killed import leaves the previous dataset byte-identical.
(The same on ``s3://``: tests/integration/test_import_s3.py.)
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from medsight_ray.data.importers.folders import import_class_folders
from medsight_ray.data.store import list_dataset
from medsight_ray.data.synth import synthesize
from medsight_ray.errors import DataError
from tests.conftest import FIXTURES, kill_mid_write


def snapshot(folder: Path) -> dict[str, bytes]:
    """Every file under ``folder`` (hidden ones too), by relative path."""
    return {p.relative_to(folder).as_posix(): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def test_a_failed_reimport_leaves_the_previous_dataset_byte_identical(tmp_path: Path) -> None:
    out = tmp_path / "digits"
    import_class_folders(FIXTURES / "digits4", out, image_size=16, mode="L", seed=1)
    (out / "NOTES.md").write_text("the user's own file")
    before = snapshot(out)
    broken = tmp_path / "digits_copy"
    shutil.copytree(FIXTURES / "digits4", broken)
    victim = sorted((broken / "two").glob("*.png"))[5]  # late in the write order for most seeds
    victim.write_bytes(b"\x89PNG\r\n\x1a\n truncated")
    with pytest.raises(DataError, match=victim.name):
        import_class_folders(broken, out, image_size=16, mode="L", seed=1)
    assert snapshot(out) == before


def test_a_failed_first_import_leaves_no_folder_behind(tmp_path: Path) -> None:
    broken = tmp_path / "src"
    shutil.copytree(FIXTURES / "digits4", broken)
    next((broken / "one").glob("*.png")).write_bytes(b"not a png")
    with pytest.raises(DataError):
        import_class_folders(broken, tmp_path / "new", image_size=16, mode="L", seed=1)
    assert not (tmp_path / "new").exists()


def test_a_writer_killed_mid_write_leaves_the_previous_dataset_byte_identical(tmp_path: Path) -> None:
    old, new = tmp_path / "old", tmp_path / "new"
    synthesize("grading", old, rows=60, image_size=16, seed=0)
    synthesize("grading", new, rows=90, image_size=16, seed=1)
    before = snapshot(old)
    kill_mid_write(str(new), str(old))
    after = snapshot(old)
    staged = {k: v for k, v in after.items() if k.startswith(".partial-")}
    assert staged, "the child was not killed mid-write: it had staged no file"
    assert {k: v for k, v in after.items() if k not in staged} == before
    # The next writer to the folder clears what the killed one left.
    synthesize("grading", old, rows=30, image_size=16, seed=2)
    assert not any(k.startswith(".partial-") for k in snapshot(old))


def test_a_rewrite_replaces_every_dataset_file_and_keeps_the_users_others(tmp_path: Path) -> None:
    out = tmp_path / "d"
    synthesize("grading", out, rows=300, image_size=16, seed=0)
    (out / "NOTES.md").write_text("kept")
    synthesize("grading", out, rows=20, image_size=16, seed=1)
    files = list_dataset(out)
    assert sum(pq.read_metadata(p).num_rows for p in files.all_paths) == 20
    assert sorted(p.name for p in out.iterdir()) == ["NOTES.md", "train-00000.parquet", "val-00000.parquet"]
