"""A data-only dry run: stream a dataset through Ray Train workers without a model.

``python -m medsight_ray.data dryrun DIR --workers N`` answers, before any GPU time is
spent: does the pipeline decode every row, does each epoch see every row exactly once
across the workers, and how many samples per second can the input side deliver?
"""

from __future__ import annotations

import hashlib
import json
import tempfile
import time
from dataclasses import asdict
from pathlib import Path
from typing import Any

from medsight_ray.data.pipeline import PipelineConfig, build_datasets


def id_digest(ids: list[str]) -> str:
    """Order-free digest of a list of image ids (to compare what was seen)."""
    return hashlib.sha1("\n".join(sorted(ids)).encode()).hexdigest()


def dryrun_loop(config: dict[str, Any]) -> None:
    """Train-worker loop: iterate each split's shard, gather ids across workers, report."""
    import ray.train
    import torch.distributed as dist

    history: list[dict[str, Any]] = []
    for epoch in range(config["epochs"]):
        metrics: dict[str, Any] = {"epoch": epoch}
        for split in config["splits"]:
            shard = ray.train.get_dataset_shard(split)
            start, ids, tensors = time.perf_counter(), [], 0
            for batch in shard.iter_batches(batch_size=config["batch_size"]):
                ids.extend(str(i) for i in batch["image_id"])
                tensors += int(batch["image"].shape[0])
            seconds = time.perf_counter() - start
            gathered: list[Any] = [None] * dist.get_world_size() if dist.is_initialized() else [None]
            if dist.is_initialized():
                dist.all_gather_object(gathered, (ids, seconds))
            else:
                gathered = [(ids, seconds)]
            all_ids = [i for worker_ids, _ in gathered for i in worker_ids]
            metrics[f"{split}/rows"] = len(all_ids)
            metrics[f"{split}/unique"] = len(set(all_ids))
            metrics[f"{split}/digest"] = id_digest(all_ids)
            metrics[f"{split}/per_worker"] = [len(w) for w, _ in gathered]
            metrics[f"{split}/rows_per_s"] = len(all_ids) / max(max(s for _, s in gathered), 1e-9)
        history.append(metrics)
        # Train V2 returns metrics only through checkpoints, so the last epoch ships
        # the history as a tiny checkpoint from rank 0.
        last = epoch == config["epochs"] - 1
        if last and ray.train.get_context().get_world_rank() == 0:
            with tempfile.TemporaryDirectory() as tmp:
                Path(tmp, "history.json").write_text(json.dumps(history))
                ray.train.report({"epoch": epoch}, checkpoint=ray.train.Checkpoint.from_directory(tmp))
        else:
            ray.train.report({"epoch": epoch})


def dry_run(data: str, workers: int = 2, epochs: int = 1, batch_size: int = 32,
            cfg: PipelineConfig | None = None, splits: tuple[str, ...] = ("train", "val"),
            cpus_per_worker: float = 0.5) -> list[dict[str, Any]]:
    """Run :func:`dryrun_loop` on ``workers`` Train workers; returns one dict per epoch."""
    from ray.train import RunConfig, ScalingConfig
    from ray.train.torch import TorchTrainer

    from medsight_ray.data.sharding import EvalExactDataConfig, keep_data_actors_on_head

    cfg = cfg or PipelineConfig()
    keep_data_actors_on_head()
    _, datasets = build_datasets(data, cfg, splits=splits, keep_ids=True)
    with tempfile.TemporaryDirectory(prefix="medsight_dryrun_") as storage:
        trainer = TorchTrainer(
            dryrun_loop,
            train_loop_config={"epochs": epochs, "splits": list(splits), "batch_size": batch_size,
                               "pipeline": asdict(cfg)},
            scaling_config=ScalingConfig(num_workers=workers, resources_per_worker={"CPU": cpus_per_worker}),
            datasets=datasets,
            dataset_config=EvalExactDataConfig(),
            run_config=RunConfig(storage_path=storage, name="dryrun"),
        )
        result = trainer.fit()
        with result.checkpoint.as_directory() as ckpt:
            return list(json.loads(Path(ckpt, "history.json").read_text()))
