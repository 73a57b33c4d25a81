"""The Ray Data pipeline on local Ray: shapes, aligned augmentation, exact sharding."""

from __future__ import annotations

import numpy as np
import pyarrow.parquet as pq
import pytest
import torch

from medsight_ray.data.augment import augment, epoch_generator
from medsight_ray.data.dryrun import dry_run, id_digest
from medsight_ray.data.pipeline import STD, PipelineConfig, build_datasets

pytestmark = [pytest.mark.ray, pytest.mark.usefixtures("ray_local")]


def _one_batch(data, split: str = "train", **cfg) -> dict:
    _, ds = build_datasets(str(data), PipelineConfig(image_size=32, **cfg), splits=(split,), keep_ids=True)
    return next(iter(ds[split].iter_batches(batch_size=1000)))


def _augmented(batch: dict, seed: int = 0, **cfg) -> dict:
    """A decoded batch through the worker's augmentation (numpy in, numpy out)."""
    tensors = {k: torch.from_numpy(v.copy()) for k, v in batch.items() if k != "image_id"}
    out = augment(tensors, PipelineConfig(image_size=32, **cfg), epoch_generator(seed, 0, 0))
    return {**{k: v.numpy() for k, v in out.items()}, "image_id": batch["image_id"]}


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
    plain = _one_batch(synth_dir("concepts", rows=80), hflip=0.0, vflip=0.0, intensity=0.0)
    flipped = _augmented(plain, hflip=1.0, vflip=1.0, intensity=0.0)
    assert np.allclose(flipped["image"], plain["image"][:, :, ::-1, ::-1])
    # Boxes followed the pattern: contrast inside flipped boxes matches the unflipped case,
    # while the stale (unflipped) boxes on flipped images miss the pattern.
    stale = dict(flipped, boxes=plain["boxes"])
    assert _box_contrast(flipped) == pytest.approx(_box_contrast(plain), rel=0.05)
    assert _box_contrast(stale) < 0.8 * _box_contrast(flipped)


def test_flips_move_masks_with_the_image(synth_dir) -> None:
    batch = _augmented(_one_batch(synth_dir("segmentation", rows=60)), hflip=0.5, vflip=0.5, intensity=0.1)
    # Objects are brighter than background: that must hold under the (random) flips.
    img, mask = batch["image"], batch["mask"] > 0.5
    assert img[mask].mean() > img[~mask].mean() + 1.0
    assert np.corrcoef(img.ravel(), batch["mask"].ravel())[0, 1] > 0.6


def test_augmentation_is_drawn_from_seed_rank_and_epoch(synth_dir) -> None:
    """Same seed, rank and epoch: the same flips; another epoch: other flips."""
    batch = _one_batch(synth_dir("segmentation", rows=60))
    a, b = _augmented(batch, seed=1), _augmented(batch, seed=1)
    assert np.array_equal(a["image"], b["image"]) and np.array_equal(a["mask"], b["mask"])
    tensors = {k: torch.from_numpy(v.copy()) for k, v in batch.items() if k != "image_id"}
    other = augment(tensors, PipelineConfig(image_size=32), epoch_generator(1, 0, 1))
    assert not np.array_equal(a["image"], other["image"].numpy())


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
