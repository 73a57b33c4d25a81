"""The Ray Data pipeline on local Ray: shapes, aligned augmentation, exact sharding."""

from __future__ import annotations

import numpy as np
import pyarrow.parquet as pq
import pytest

from medsight_ray.data.dryrun import dry_run, id_digest
from medsight_ray.data.pipeline import STD, PipelineConfig, build_datasets

pytestmark = [pytest.mark.ray, pytest.mark.usefixtures("ray_local")]


def _one_batch(data, split: str = "train", **cfg) -> dict:
    _, ds = build_datasets(str(data), PipelineConfig(image_size=32, **cfg), splits=(split,), keep_ids=True)
    return next(iter(ds[split].iter_batches(batch_size=1000)))


def test_tensor_shapes_and_dtypes_for_every_task(synth_dir) -> None:
    c = _one_batch(synth_dir("concepts", rows=60), "val")
    n = len(c["image_id"])
    assert c["image"].shape == (n, 1, 32, 32) and c["image"].dtype == np.float32
    assert c["concepts"].shape == (n, 22) and c["targets"].shape == (n, 6)
    assert c["boxes"].shape[0] == n and c["boxes"].shape[2] == 5
    g = _one_batch(synth_dir("grading", rows=60), "val")
    assert g["image"].shape[1:] == (3, 32, 32) and g["label"].dtype == np.int64
    s = _one_batch(synth_dir("segmentation", rows=60), "val")
    assert s["mask"].shape == s["image"].shape and set(np.unique(s["mask"])) <= {0.0, 1.0}
    assert s["has_mask"].dtype == np.float32
    # Validation is not augmented: images are the stored pixels, normalised.
    assert abs(float(g["image"].mean()) - ((0.3 - 0.5) / STD)) < 1.0


def _box_contrast(batch: dict) -> float:
    """Mean pixel std inside the boxes divided by the image's std."""
    ratios = []
    for img, boxes in zip(batch["image"][:, 0], batch["boxes"]):
        for k, x0, y0, x1, y1 in boxes:
            if k < 0:
                continue
            patch = img[int(y0 * 32):int(np.ceil(y1 * 32)), int(x0 * 32):int(np.ceil(x1 * 32))]
            ratios.append(patch.std() / img.std())
    return float(np.mean(ratios))


def test_flips_move_boxes_with_the_image(synth_dir) -> None:
    data = synth_dir("concepts", rows=80)
    plain = _one_batch(data, hflip=0.0, vflip=0.0, intensity=0.0)
    flipped = _one_batch(data, hflip=1.0, vflip=1.0, intensity=0.0)
    order = {i: k for k, i in enumerate(plain["image_id"])}
    idx = [order[i] for i in flipped["image_id"]]
    assert np.allclose(flipped["image"], plain["image"][idx][:, :, ::-1, ::-1])
    # Boxes followed the pattern: contrast inside flipped boxes matches the unflipped case,
    # while the stale (unflipped) boxes on flipped images miss the pattern.
    stale = dict(flipped, boxes=plain["boxes"][idx])
    assert _box_contrast(flipped) == pytest.approx(_box_contrast(plain), rel=0.05)
    assert _box_contrast(stale) < 0.8 * _box_contrast(flipped)


def test_flips_move_masks_with_the_image(synth_dir) -> None:
    batch = _one_batch(synth_dir("segmentation", rows=60), hflip=0.5, vflip=0.5, intensity=0.1)
    # Objects are brighter than background: that must hold under the (random) flips.
    img, mask = batch["image"], batch["mask"] > 0.5
    assert img[mask].mean() > img[~mask].mean() + 1.0
    assert np.corrcoef(img.ravel(), batch["mask"].ravel())[0, 1] > 0.6


def test_two_workers_see_every_row_once_per_epoch(synth_dir) -> None:
    data = synth_dir("grading", rows=90, seed=5)
    expected = {}
    for split in ("train", "val"):
        ids = [i for f in sorted(data.glob(f"{split}-*.parquet")) for i in pq.read_table(f)["image_id"].to_pylist()]
        expected[split] = ids
    history = dry_run(str(data), workers=2, epochs=2, batch_size=8, cfg=PipelineConfig(image_size=32))
    assert len(history) == 2
    for epoch in history:
        # Validation: exact, every row once, even when the count is odd.
        assert epoch["val/rows"] == epoch["val/unique"] == len(expected["val"])
        assert epoch["val/digest"] == id_digest(expected["val"])
        # Training: equal shards for DDP; no row twice, at most world_size - 1 held back.
        assert epoch["train/rows"] == epoch["train/unique"]
        assert len(expected["train"]) - 1 <= epoch["train/rows"] <= len(expected["train"])
        assert len(set(epoch["train/per_worker"])) == 1
    if len(expected["train"]) % 2 == 0:
        assert history[0]["train/digest"] == id_digest(expected["train"])
