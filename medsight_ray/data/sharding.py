"""How datasets are shared among Train workers.

Ray Train's default ``DataConfig`` splits every dataset with ``equal=True``, which may
drop up to ``world_size - 1`` rows to give workers equal counts. That is right for
training, where DDP needs every worker to run the same number of steps, but wrong for
evaluation: a metric must see every validation row exactly once. This config splits
evaluation datasets with ``equal=False``; the fit loop then gathers per-worker
statistics, so unequal shard sizes cannot skew the metric.

A one-worker run takes each dataset whole (``Dataset.iterator()``), with no split
coordinator actor: the worker itself executes the dataset. Ray Data then creates its two
per-cluster actors from that worker, on its node, for the life of the cluster; see
:func:`keep_data_actors_on_head` for why and how they are put on the head instead.
"""

from __future__ import annotations

from typing import Any

from ray.train import DataConfig

#: The resource only the head node has (Ray Train pins its own state actor with it).
HEAD_RESOURCE = "node:__internal_head__"
#: Ray Data's detached per-cluster actors: (name, namespace).
DATA_ACTORS = (("datasets_stats_actor", "_dataset_stats_actor"), ("AutoscalingCoordinator", "AutoscalingCoordinator"))


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


def _create_data_actors() -> None:
    """Ray Data's stats actor and autoscaling coordinator, created on this process's node
    unless they exist (Ray Data's own ``get_if_exists`` calls)."""
    from ray.data._internal.cluster_autoscaler import get_or_create_autoscaling_coordinator
    from ray.data._internal.stats import get_or_create_stats_actor

    get_or_create_stats_actor()
    get_or_create_autoscaling_coordinator()


def keep_data_actors_on_head() -> None:
    """Make sure Ray Data's detached per-cluster actors live on the head node.

    Ray Data creates its stats actor and its autoscaling coordinator (both detached, one
    per cluster) on the node of the first process that executes a dataset, pinned there.
    A one-worker run executes its datasets in its Train worker, so on an autoscaling
    cluster they would land on a worker node the autoscaler added for that run: that
    node's raylet would then report busy workers for ever, and the autoscaler would never
    remove it, billing an idle GPU node until the cluster is torn down. The head is the one
    node that stays. Called by the driver before a run starts; once they exist this costs
    two name lookups.
    """
    import ray
    from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

    try:
        for name, namespace in DATA_ACTORS:
            ray.get_actor(name, namespace=namespace)
        return
    except ValueError:  # not created yet
        pass
    head = next(n["NodeID"] for n in ray.nodes() if n["Alive"] and HEAD_RESOURCE in n.get("Resources", {}))
    if ray.get_runtime_context().get_node_id() == head:
        _create_data_actors()  # the driver is on the head (the CLI there, a Ray job)
        return
    # A driver elsewhere (a Tune trial's driver on a worker node) asks the head to do it,
    # by node, which also takes the task out of the trial's placement group.
    ray.get(ray.remote(num_cpus=0)(_create_data_actors).options(
        scheduling_strategy=NodeAffinitySchedulingStrategy(head, soft=False)).remote())
