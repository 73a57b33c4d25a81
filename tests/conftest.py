"""Shared fixtures: one local Ray instance per test session, small datasets."""

from __future__ import annotations

import bz2
import gzip
import lzma
import zipfile
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import zstandard

from medsight_ray.raylocal import set_local_env
from medsight_ray.zoo import datafaults

set_local_env()

FIXTURES = Path(__file__).parent / "fixtures"


def _zip(data: bytes, path: Path) -> bytes:
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        archive.writestr(path.stem, data)
    return path.read_bytes()


#: suffix -> compress(plain bytes, the compressed file's path) -> the compressed file's bytes.
COMPRESS: dict[str, Callable[[bytes, Path], bytes]] = {
    ".gz": lambda b, _: gzip.compress(b, mtime=0),
    ".bz2": lambda b, _: bz2.compress(b),
    ".xz": lambda b, _: lzma.compress(b),
    ".zip": _zip,
    ".zst": lambda b, _: zstandard.ZstdCompressor().compress(b),
}


def compressed(plain: Path, folder: Path, suffix: str) -> Path:
    """``plain`` compressed by the standard library (or ``zstandard``) into ``folder``,
    named as ``plain`` plus ``suffix``."""
    target = folder / (plain.name + suffix)
    target.write_bytes(COMPRESS[suffix](plain.read_bytes(), target))
    return target


@pytest.fixture(scope="session")
def ray_local() -> Iterator[None]:
    """One shared local Ray; 4 logical CPUs leave room for Ray Data beside 2 workers."""
    import ray

    from medsight_ray.raylocal import init_ray

    init_ray(num_cpus=4)
    yield
    ray.shutdown()


@pytest.fixture(scope="session")
def synth_dir(tmp_path_factory: pytest.TempPathFactory) -> Callable[..., Path]:
    """Factory: a cached synthetic dataset per (task, rows, size, seed, knobs)."""
    from medsight_ray.data.synth import Knobs, synthesize

    cache: dict[tuple, Path] = {}

    def make(task: str, rows: int = 120, image_size: int = 32, seed: int = 0, **knobs: object) -> Path:
        key = (task, rows, image_size, seed, tuple(sorted(knobs.items())))
        if key not in cache:
            out = tmp_path_factory.mktemp(f"synth_{task}")
            synthesize(task, out, rows=rows, image_size=image_size, seed=seed, knobs=Knobs(**knobs))
            cache[key] = out
        return cache[key]

    return make


BUCKET = "medsight-test"


@pytest.fixture(scope="session")
def s3() -> Iterator[Callable[..., str]]:
    """A local S3-compatible server (moto's, on 127.0.0.1) with an empty bucket; gives
    the URI of a key in it, ``s3://KEYS@bucket/key?endpoint_override=HOST:PORT&...``,
    which is how a MinIO or other S3-compatible store is named (the keys travel with
    the filesystem into Ray's processes, which have no AWS settings of their own)."""
    import pyarrow.fs as pafs
    from moto.server import ThreadedMotoServer

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()

    def uri(key: str, keys: str = "testing:testing") -> str:
        return f"s3://{keys}@{BUCKET}/{key}?endpoint_override={host}:{port}&scheme=http&region=us-east-1"

    fs, _ = pafs.FileSystem.from_uri(uri("") + "&allow_bucket_creation=true")
    fs.create_dir(BUCKET)
    yield uri
    server.stop()


def upload(s3: Callable[..., str], local: Path, key: str, keys: str = "testing:testing") -> str:
    """Copy a local file or folder to ``key`` in the test bucket; returns its URI."""
    import pyarrow.fs as pafs

    fs, path = pafs.FileSystem.from_uri(s3(key, keys))
    pafs.copy_files(str(local), path, source_filesystem=pafs.LocalFileSystem(), destination_filesystem=fs)
    return s3(key, keys)


@pytest.fixture()
def vindr_images(tmp_path: Path) -> tuple[Path, Path]:
    """The real DICOM under half the CSV's image ids, a PNG of it under the rest."""
    import shutil

    import pandas as pd
    from PIL import Image

    from medsight_ray.data.images import read_dicom

    frame = pd.read_csv(FIXTURES / "vindr_sample.csv")
    ids = list(dict.fromkeys(frame.image_id))
    folder = tmp_path / "images"
    folder.mkdir()
    png = Image.fromarray(read_dicom(FIXTURES / "cxr_small.dcm"))
    for i, image_id in enumerate(ids):
        if i % 2:
            shutil.copy(FIXTURES / "cxr_small.dcm", folder / f"{image_id}.dcm")
        else:
            png.save(folder / f"{image_id}.png")
    # The boxes refer to the original VinDr images (about 2-3k pixels a side).
    sizes = frame.groupby("image_id")[["x_max", "y_max"]].max().fillna(1000) + 200
    sizes = sizes.rename(columns={"x_max": "width", "y_max": "height"}).astype(int).reset_index()
    sizes.to_csv(tmp_path / "sizes.csv", index=False)
    return folder, tmp_path / "sizes.csv"


rewrite_dataset = datafaults.rewrite_dataset  # tests edit copies of datasets as the zoo does


def run_cli(cli: Callable[[], None], prog: str, args: tuple[str, ...],
            capsys: pytest.CaptureFixture) -> tuple[int, str]:
    """Run a ``cli()`` entry point in this process (sharing the session's Ray).

    Returns the exit code and everything printed (stdout then stderr).
    """
    import sys

    saved = sys.argv
    sys.argv = [prog, *args]
    try:
        with pytest.raises(SystemExit) as exit_info:
            cli()
    finally:
        sys.argv = saved
    captured = capsys.readouterr()
    return int(exit_info.value.code), captured.out + captured.err


def grading_space(*lrs: float, epochs: int = 1) -> str:
    """A tiny grading search space (32 px, resnet10t) whose trials are the given learning rates."""
    points = "\n".join(f"  - {{optim.lr: {lr!r}}}" for lr in lrs)
    return f"""
stage: grading/grading
num_samples: {len(lrs)}
fixed:
  fit.epochs: {epochs}
  fit.batch_size: 16
  fit.cpus_per_worker: 0.5
  data.image_size: 32
  model.backbone.name: resnet10t
params:
  optim.lr: {{dist: loguniform, low: 1.0e-4, high: 1.0e-1}}
points_to_evaluate:
{points}
"""


#: A child process that rewrites the dataset at argv[1] into argv[2] through a
#: DatasetWriter, four rows a row group, and stops mid-write (files open, half the rows
#: written) after printing "mid-write", until it is killed.
_MID_WRITE_CHILD = """
import sys, time
import pyarrow.parquet as pq
from medsight_ray.data.store import DatasetWriter, list_dataset, read_info
files = list_dataset(sys.argv[1])
rows = [r for p in files.all_paths for r in pq.read_table(p, filesystem=files.filesystem).to_pylist()]
writer = DatasetWriter(sys.argv[2], read_info(files), row_group_rows=4, rows_per_file=8)
writer.write(rows[: len(rows) // 2])
print("mid-write", flush=True)
time.sleep(600)
"""


def kill_mid_write(source: str, out: str) -> None:
    """Start a writer of ``source``'s rows to ``out`` and SIGKILL it mid-write."""
    import subprocess
    import sys

    child = subprocess.Popen([sys.executable, "-c", _MID_WRITE_CHILD, source, out], stdout=subprocess.PIPE,
                             text=True, cwd=Path(__file__).resolve().parents[1])
    try:
        assert child.stdout is not None and child.stdout.readline().strip() == "mid-write"
    finally:
        child.kill()
        child.wait(timeout=60)
