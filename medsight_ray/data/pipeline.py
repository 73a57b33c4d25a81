"""The Ray Data input pipeline: parquet → decode/resize → normalise → augment → tensors.

:func:`build_datasets` returns lazy, streaming Ray Datasets, one per split, ready for
``TorchTrainer(datasets=...)``; workers iterate their shard with
``iter_torch_batches``. Nothing is materialised: files are read in row groups and
decoded in tasks as the trainer pulls batches.

Batch columns (B rows, S = ``image_size``, K concepts, C targets, N = max boxes):

    image       float32 (B, ch, S, S)  normalised as (x/255 - 0.5) / 0.25
    concepts    float32 (B, K)          task concepts
    targets     float32 (B, C)          task concepts
    boxes       float32 (B, N, 5)       task concepts: concept, x_min, y_min, x_max, y_max in
                                        [0, 1]; padding rows have concept = -1
    label       int64   (B,)            task grading
    mask        float32 (B, 1, S, S)    task segmentation, 0/1
    has_mask    float32 (B,)            task segmentation, 1 = mask known
    image_id    str     (B,)            only with ``keep_ids`` (not a tensor)

Train-only augmentation (flips that move boxes and masks with the image, intensity
jitter) is applied by the Train worker to each batch, where the seed, rank and epoch
are known (:mod:`medsight_ray.data.augment`). With a ``seed``, the train split's file
order and its class-aware resampling are drawn from it too, so a one-worker run is
repeatable.
"""

from __future__ import annotations

import zlib
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import pyarrow as pa

from medsight_ray.data.decoded import read_manifest
from medsight_ray.data.images import decode_images
from medsight_ray.data.schema import DatasetInfo
from medsight_ray.data.store import list_dataset, read_info
from medsight_ray.errors import DataError

MEAN, STD = 0.5, 0.25


@dataclass(frozen=True)
class PipelineConfig:
    """Input pipeline settings.

    Attributes:
        image_size: side S of the square tensors, pixels.
        hflip: probability of a horizontal flip (train only).
        vflip: probability of a vertical flip (train only).
        intensity: brightness/contrast jitter amplitude, 0 = off (train only).
        decode_cpus: logical CPUs per decode task; small, so that Ray Data can run
            beside train workers on a small machine.
        decode_batch: rows per decode task call.
        decode_tasks: most decode tasks of one split running at once; 0 = Ray
            Data's default, as many as the free CPUs hold at ``decode_cpus`` each (each
            a Python process of about 100 MiB). The CLIs on a local Ray they start set
            the machine's cores (:func:`medsight_ray.raylocal.local_machine_overrides`).
    """

    image_size: int = 64
    hflip: float = 0.5
    vflip: float = 0.0
    intensity: float = 0.1
    decode_cpus: float = 0.25
    decode_batch: int = 64
    decode_tasks: int = 0


def normalise(images: np.ndarray) -> np.ndarray:
    return ((images / 255.0 - MEAN) / STD).astype(np.float32)


def _boxes(column: pa.ChunkedArray | pa.Array, max_boxes: int) -> np.ndarray:
    """Pad box lists to (B, max(N, 1), 5) float32 with concept = -1 for padding."""
    rows = column.to_pylist()
    out = np.full((len(rows), max(max_boxes, 1), 5), -1.0, dtype=np.float32)
    for i, boxes in enumerate(rows):
        for j, b in enumerate(boxes or []):
            out[i, j] = (b["concept"], b["x_min"], b["y_min"], b["x_max"], b["y_max"])
    return out


def resample(table: pa.Table, rates: list[float], rng: np.random.Generator) -> pa.Table:
    """Class-aware resampling: each row of class c appears floor(r_c) times, plus once
    more with probability r_c - floor(r_c); the expected count is r_c."""
    labels = np.asarray(table.column("label").to_pylist())
    r = np.asarray(rates)[labels]
    copies = np.floor(r).astype(int) + (rng.random(len(r)) < r - np.floor(r))
    return table.take(pa.array(np.repeat(np.arange(len(r)), copies)))


def select_fold(table: pa.Table, fold: tuple[int, int, int], held_out: bool) -> pa.Table:
    """Rows whose patient is (``held_out``) or is not in fold ``fold = (index, folds, seed)``."""
    from medsight_ray.data.splits import fold_of

    index, folds, seed = fold
    keep = [(fold_of(p, folds, seed) == index) == held_out for p in table.column("patient_id").to_pylist()]
    return table.filter(pa.array(keep, type=pa.bool_()))


def decode_batch(table: pa.Table, info_json: str, cfg: dict[str, Any], train: bool,
                 keep_ids: bool, rates: list[float] | None = None,
                 fold: tuple[int, int, int] | None = None, seed: int | None = None) -> dict[str, np.ndarray]:
    """Turn a parquet record batch into model-ready numpy arrays (see module docstring).

    ``fold`` keeps only this batch's rows of a cross-validation fold (held out for
    evaluation, the rest for training). ``rates`` (train only) resamples rows by class;
    with a ``seed`` the copies are drawn from it and the batch's image ids, so they do
    not depend on which decode task finished first.
    """
    info = DatasetInfo.from_json(info_json)
    config = PipelineConfig(**cfg)
    if fold is not None:
        table = select_fold(table, fold, held_out=not train)
    if rates is not None:
        ids = table.column("image_id").to_pylist()
        entropy = [seed, zlib.crc32("\n".join(ids).encode())] if seed is not None else None
        table = resample(table, rates, np.random.default_rng(entropy))
    ids = table.column("image_id").to_pylist()
    batch: dict[str, np.ndarray] = {
        "image": normalise(decode_images(table.column("image"), ids, info.image_mode, config.image_size)),
    }
    if info.task == "concepts":
        batch["concepts"] = np.asarray(table.column("concepts").to_pylist(), dtype=np.float32)
        batch["targets"] = np.asarray(table.column("targets").to_pylist(), dtype=np.float32)
        batch["boxes"] = _boxes(table.column("boxes"), info.max_boxes)
    elif info.task == "grading":
        batch["label"] = np.asarray(table.column("label").to_pylist(), dtype=np.int64)
    else:
        masks = decode_images(table.column("mask"), ids, "L", config.image_size, nearest=True)
        batch["mask"] = (masks > 127).astype(np.float32)
        batch["has_mask"] = np.asarray(table.column("has_segmentation").to_pylist(), dtype=np.float32)
    batch["image"] = np.ascontiguousarray(batch["image"])
    if "mask" in batch:
        batch["mask"] = np.ascontiguousarray(batch["mask"])
    if keep_ids:
        batch["image_id"] = np.asarray(ids, dtype=object)
    return batch


def build_datasets(
    data: str,
    cfg: PipelineConfig | None = None,
    splits: tuple[str, ...] = ("train", "val"),
    keep_ids: bool = False,
    rates: list[float] | None = None,
    fold: tuple[int, int, int] | None = None,
    seed: int | None = None,
    decoded: str | None = None,
) -> tuple[DatasetInfo, dict[str, Any]]:
    """Lazy Ray Datasets for ``splits`` of the dataset at ``data``.

    Args:
        data: dataset directory or URI.
        cfg: pipeline settings.
        splits: which splits to build; ``train`` gets a shuffled file order (and
            resampling), the others are read in order.
        keep_ids: add the ``image_id`` column (for tests and prediction).
        rates: class-aware resampling rates of the train split (task grading).
        fold: ``(index, folds, seed)`` for k-fold cross-validation: ``train`` and
            ``val`` are then both drawn from the train and val files, by patient.
        seed: draws the train split's file order (a new order each epoch, the same
            orders in every run) and its resampling; None = unseeded.
        decoded: a decoded mirror of ``data`` (:mod:`medsight_ray.data.decoded`),
            read instead of ``data`` when it is complete and at ``cfg.image_size``:
            the same batches, without decoding a PNG.

    Returns:
        (dataset info, split name → ``ray.data.Dataset``).

    Raises:
        DataError: the dataset has no files for a requested split.
    """
    import ray.data
    from ray.data import FileShuffleConfig

    # Ray 2.60's default parquet datasource (V2) spent 7-9 s per execution on a
    # 470-row file here, against 0.2-0.5 s for V1, and Train re-executes the read
    # every epoch (bench/input_pipeline.py measures it). The plan is built on the
    # driver, so setting it here covers every read of this pipeline.
    ray.data.DataContext.get_current().use_datasource_v2 = False
    cfg = cfg or PipelineConfig()
    manifest = read_manifest(decoded) if decoded else None
    files = list_dataset(decoded if manifest and manifest.get("size") == cfg.image_size else data)
    info = read_info(files)
    columns = list(info.schema().names)
    out: dict[str, Any] = {}
    for split in splits:
        paths = files.by_split.get(split)
        if fold is not None and split in ("train", "val"):
            paths = files.by_split.get("train", []) + files.by_split.get("val", [])
        if not paths:
            raise DataError(f"dataset has no {split} split", where=str(data),
                            expected=f"a {split}-00000.parquet file with rows",
                            got=f"splits {sorted(files.by_split)}",
                            fix="re-import or re-synthesise with a non-zero --val-fraction")
        train = split == "train"
        # File-order shuffling streams (a block-order shuffle would materialise the
        # split); the fit loop adds a local shuffle buffer on top.
        order = (FileShuffleConfig(seed=seed) if seed is not None else "files") if train else None
        ds = ray.data.read_parquet(paths, filesystem=files.filesystem, columns=columns,
                                   num_cpus=cfg.decode_cpus, shuffle=order)
        ds = ds.map_batches(
            decode_batch, batch_size=cfg.decode_batch, batch_format="pyarrow", num_cpus=cfg.decode_cpus,
            compute=ray.data.TaskPoolStrategy(size=cfg.decode_tasks or None),
            fn_kwargs={"info_json": info.to_json(), "cfg": asdict(cfg), "train": train, "keep_ids": keep_ids,
                       "rates": rates if train else None, "fold": fold, "seed": seed},
        )
        out[split] = ds
    return info, out
