"""A sweep's decoded mirror: the same batches as decoding every epoch, and nothing left
behind by a mirror that failed."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from medsight_ray.data.decoded import MANIFEST, ensure_decoded, read_manifest
from medsight_ray.data.pipeline import PipelineConfig, build_datasets
from medsight_ray.data.stats import fingerprint
from medsight_ray.data.store import list_dataset
from medsight_ray.errors import DataError

pytestmark = [pytest.mark.ray, pytest.mark.usefixtures("ray_local")]


def _epoch(data: str, decoded: str | None, split: str, **kw) -> list[dict]:
    _, ds = build_datasets(data, PipelineConfig(image_size=24, decode_batch=16), splits=(split,), keep_ids=True,
                           decoded=decoded, seed=3, **kw)
    ds[split].context.execution_options.preserve_order = True
    return list(ds[split].iter_batches(batch_size=None))


@pytest.mark.parametrize("task", ["concepts", "grading", "segmentation"])
def test_mirror_gives_the_batches_of_decoding_every_epoch(synth_dir, tmp_path, task) -> None:
    data = str(synth_dir(task, rows=90, image_size=32))  # resized 32 -> 24 px on the way
    mirror = ensure_decoded(data, fingerprint(list_dataset(data)), 24, str(tmp_path / "decoded"))
    manifest = read_manifest(mirror)
    assert manifest["size"] == 24 and sum(manifest["files"].values()) == 90 and manifest["bytes"] > 0
    rates = [1.0, 2.0, 0.5, 3.0] if task == "grading" else None  # resampling draws the same copies
    for split in ("train", "val"):
        plain, cached = _epoch(data, None, split, rates=rates), _epoch(data, mirror, split, rates=rates)
        assert len(plain) == len(cached) and sum(len(b["image_id"]) for b in plain) > 0
        for a, b in zip(plain, cached):
            assert a.keys() == b.keys()
            for key in a:
                assert np.array_equal(a[key], b[key]), (split, key)
    # Found, not written again, by the next sweep's stage.
    before = read_manifest(mirror)
    assert ensure_decoded(data, fingerprint(list_dataset(data)), 24, str(tmp_path / "decoded")) == mirror
    assert read_manifest(mirror) == before
    # A trial of another image size decodes the PNGs (a mirror at 24 px is never resized).
    other = build_datasets(data, PipelineConfig(image_size=16), splits=("val",), decoded=mirror)[1]["val"]
    assert next(iter(other.iter_batches(batch_size=4)))["image"].shape[-1] == 16


def test_an_image_that_does_not_decode_fails_by_name_and_leaves_no_mirror(synth_dir, tmp_path) -> None:
    source = synth_dir("grading", rows=40, image_size=16)
    broken = tmp_path / "broken"
    broken.mkdir()
    for path in source.glob("*.parquet"):
        table = pq.read_table(path)
        if path.name.startswith("train"):
            images = table.column("image").to_pylist()
            images[5] = b"not a png"
            table = table.set_column(table.schema.get_field_index("image"), "image", pa.array(images, pa.binary()))
        footer = pq.ParquetFile(path).metadata.metadata
        pq.write_table(table.replace_schema_metadata({b"medsight_ray": footer[b"medsight_ray"]}), broken / path.name)
    root = tmp_path / "decoded"
    with pytest.raises(DataError) as err:
        ensure_decoded(str(broken), "fp", 16, str(root))
    assert "train-00000.parquet" in err.value.where and "do not decode" in str(err.value)
    mirror = next(root.iterdir())
    assert not (mirror / MANIFEST).exists() and list(mirror.iterdir()) == []
