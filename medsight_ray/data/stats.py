"""Label statistics and a dataset fingerprint, read from parquet without decoding images."""

from __future__ import annotations

import hashlib
from typing import Any

import numpy as np
import pyarrow.parquet as pq

from medsight_ray.data.schema import DatasetInfo
from medsight_ray.data.store import DatasetFiles, read_footer


def label_stats(files: DatasetFiles, info: DatasetInfo, split: str = "train",
                fold: tuple[int, int, int] | None = None) -> dict[str, Any]:
    """Rows and label counts of one split: the inputs of pos_weight and class weights.

    With ``fold = (index, folds, seed)``: of the training rows of that fold (train and
    val files, patients outside the held-out fold).

    Returns ``rows``, and per task ``concept_positives`` (K,) and ``target_positives``
    (C,), or ``class_counts`` (classes,), or ``labelled`` (rows with a known mask), as lists.
    """
    columns = {"concepts": ["concepts", "targets"], "grading": ["label"], "segmentation": ["has_segmentation"]}
    stats: dict[str, Any] = {"rows": 0}
    concept = np.zeros(len(info.concept_names), dtype=np.int64)
    target = np.zeros(len(info.target_names), dtype=np.int64)
    classes = np.zeros(len(info.class_names), dtype=np.int64)
    labelled = 0
    paths = files.by_split.get(split, [])
    if fold is not None:
        paths = files.by_split.get("train", []) + files.by_split.get("val", [])
    for path in paths:
        with files.filesystem.open_input_file(path) as fh:
            table = pq.read_table(fh, columns=columns[info.task] + (["patient_id"] if fold else []))
        if fold is not None:
            from medsight_ray.data.pipeline import select_fold

            table = select_fold(table, fold, held_out=False)
        stats["rows"] += table.num_rows
        if info.task == "concepts":
            concept += np.asarray(table["concepts"].to_pylist(), dtype=np.int64).reshape(-1, len(concept)).sum(0)
            target += np.asarray(table["targets"].to_pylist(), dtype=np.int64).reshape(-1, len(target)).sum(0)
        elif info.task == "grading":
            classes += np.bincount(np.asarray(table["label"].to_pylist()), minlength=len(classes))[: len(classes)]
        else:
            labelled += int(sum(table["has_segmentation"].to_pylist()))
    if info.task == "concepts":
        stats.update(concept_positives=concept.tolist(), target_positives=target.tolist())
    elif info.task == "grading":
        stats["class_counts"] = classes.tolist()
    else:
        stats["labelled"] = labelled
    return stats


def fingerprint(files: DatasetFiles) -> str:
    """A cheap identity of a dataset: file names, sizes and footer metadata.

    Stored in checkpoints; a pipeline refuses to chain stages across datasets whose
    fingerprints differ.
    """
    digest = hashlib.sha1()
    for path in files.all_paths:
        size = files.filesystem.get_file_info(path).size
        _, meta = read_footer(files, path)
        digest.update(f"{path.rsplit('/', 1)[-1]}:{size}:".encode())
        digest.update(meta.get(b"medsight_ray", b""))
    return digest.hexdigest()[:16]
