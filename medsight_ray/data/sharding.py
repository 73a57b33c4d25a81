"""How datasets are shared among Train workers.

Ray Train's default ``DataConfig`` splits every dataset with ``equal=True``, which may
drop up to ``world_size - 1`` rows to give workers equal counts. That is right for
training, where DDP needs every worker to run the same number of steps, but wrong for
evaluation: a metric must see every validation row exactly once. This config splits
evaluation datasets with ``equal=False``; the fit loop then gathers per-worker
statistics, so unequal shard sizes cannot skew the metric.
"""

from __future__ import annotations

from typing import Any

from ray.train import DataConfig


class EvalExactDataConfig(DataConfig):
    """Split ``train`` equally, every other dataset exactly (no row dropped)."""

    def __init__(self, equal_datasets: tuple[str, ...] = ("train",), **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._equal = set(equal_datasets)

    def configure(self, datasets: dict[str, Any], world_size: int, worker_handles: Any,
                  worker_node_ids: Any, **kwargs: Any) -> list[dict[str, Any]]:
        """Assign a streaming split of each dataset to each worker."""
        output: list[dict[str, Any]] = [{} for _ in range(world_size)]
        hints = worker_node_ids if self._enable_shard_locality else None
        for name, ds in datasets.items():
            if ds.name is None:
                ds.set_name(name)
            ds = ds.copy(ds)
            options = self._resolve_execution_options(name)
            # Blocks in the order the plan made them, not in the order decode tasks
            # finished: with a seeded file order, a one-worker run reads the same rows
            # in the same order every time.
            options.preserve_order = True
            ds.context.execution_options = options
            if world_size == 1:
                output[0][name] = ds.iterator()
                continue
            shards = ds.streaming_split(world_size, equal=name in self._equal, locality_hints=hints)
            for i, shard in enumerate(shards):
                output[i][name] = shard
        return output
