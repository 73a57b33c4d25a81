"""Start or join Ray with safe defaults for a single machine.

Local Ray listens on all interfaces unless told otherwise. Setting
``RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER=0`` before Ray starts makes the node IP 127.0.0.1,
so the GCS, raylet, dashboard, metrics and client ports are loopback-only; the
dashboard host is pinned to 127.0.0.1 as well. Progress bars are turned off because
the Train split coordinator ignores ``DataContext.enable_progress_bars``.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

LOOPBACK_ENV = {
    "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0",
    "RAY_DATA_DISABLE_PROGRESS_BARS": "1",
    "RAY_USAGE_STATS_ENABLED": "0",
    "RAY_TRAIN_V2_ENABLED": "1",
    # The classic reporter honours our CLIReporter, whose table has a health column.
    "RAY_AIR_NEW_OUTPUT": "0",
    # Train's controller looks at its workers every 2 s by default, so a run's end (and
    # each report) waits up to 2 s to be seen: measured as 2.8-4.2 s from the last
    # epoch's end to the group's shutdown (bench/trial_start.py). A look costs one RPC
    # per worker; on one machine, every 0.5 s is nothing.
    "RAY_TRAIN_HEALTH_CHECK_INTERVAL_S": "0.5",
}


#: Whether :func:`init_ray` started a local Ray in this process (which cannot add nodes).
_STARTED_LOCAL = False


def started_local_ray() -> bool:
    """Is this process's Ray a local instance it started itself (one machine, no
    autoscaler), rather than a cluster it joined?"""
    return _STARTED_LOCAL


def set_local_env() -> None:
    """Apply :data:`LOOPBACK_ENV` unless the user set a value; call before importing ray."""
    for key, value in LOOPBACK_ENV.items():
        os.environ.setdefault(key, value)


def _loopback_if_imported_early() -> None:
    """Ray reads ``RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER`` once, when it is imported; if something
    imported ray before :func:`set_local_env` ran, the driver would still pick the
    machine's address. Apply the setting to the imported constant as well."""
    from ray._private import ray_constants

    if os.environ.get("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER") == "0":
        ray_constants.ENABLE_RAY_CLUSTER = False


def local_cpus() -> int:
    """Logical CPUs of a local start: the cores plus 2, at least 4.

    Ray Data plans every ``read_parquet`` with 1-CPU sampling tasks; when trials' drivers
    and workers hold fractions of every core, such a task can never be scheduled and the
    read waits for ever. Two spare logical CPUs keep it schedulable.
    """
    return max(4, (os.cpu_count() or 1) + 2)


def local_machine_overrides(cfg: Any, runs_at_once: int = 1) -> dict[str, int]:
    """Settings for runs that are alone on a local Ray they started, for each of
    ``fit.torch_threads`` and ``data.decode_tasks`` still at 0 (automatic).

    Ray's defaults suit a packed cluster: torch threads = the CPUs a worker reserves,
    and as many decode tasks as the free CPUs hold. A local start keeps reservations
    small so that decode tasks fit beside the workers, which leaves cores idle for
    torch and lets Ray Data start a Python process per 0.25 CPU (12 on 2 cores, about
    100 MiB each). Here the cores are divided among the workers that run at once, and
    each run decodes with at most as many tasks as the machine has cores.
    ``bench/ray_overhead.py`` and ``bench/input_pipeline.py`` measure both.

    Args:
        cfg: a stage config (``fit.workers``, ``fit.torch_threads``, ``data.decode_tasks``).
        runs_at_once: runs sharing the machine (a sweep's concurrent trials).
    """
    cores = os.cpu_count() or 1
    runs = max(runs_at_once, 1)
    out = {}
    if not cfg.fit.torch_threads:
        out["fit.torch_threads"] = max(1, cores // max(cfg.fit.workers * runs, 1))
    if not cfg.data.decode_tasks:
        out["data.decode_tasks"] = max(1, cores // runs)
    return out


def init_ray(address: str | None = None, num_cpus: int | None = None, **kwargs: Any) -> bool:
    """Connect to the cluster at ``address`` (or ``RAY_ADDRESS``), else start local Ray.

    A local start binds every listener to 127.0.0.1. ``num_cpus`` sets the logical
    CPUs of a local start (default :func:`local_cpus`): more than the cores is fine and
    leaves room for Ray Data's tasks beside train workers.

    Returns:
        True when this call started a local Ray instance, False when it joined a
        cluster or Ray was already initialised.
    """
    set_local_env()
    import ray

    if ray.is_initialized():
        return False
    address = address or os.environ.get("RAY_ADDRESS")
    if address:
        ray.init(address=address, log_to_driver=True, **kwargs)
        return False
    _loopback_if_imported_early()
    ray.init(num_cpus=num_cpus or local_cpus(), include_dashboard=True, dashboard_host="127.0.0.1",
             log_to_driver=True, **kwargs)
    global _STARTED_LOCAL
    _STARTED_LOCAL = True
    return True


def stop_local_ray() -> None:
    """Disconnect this driver (and shut down the local Ray it started), while its output
    still goes to the run's log (a shutdown at interpreter exit would print on the
    console)."""
    import ray

    global _STARTED_LOCAL
    if ray.is_initialized():
        ray.shutdown()
    _STARTED_LOCAL = False


@contextlib.contextmanager
def ray_for_run(address: str | None, log: Path | None) -> Iterator[bool]:
    """Ray for one CLI run: join the cluster at ``address`` or start a local Ray; inside a
    console session (``log`` is its file) echo the workers' lines for people and say
    where the logs are. On the way out, a connection this made is closed (a local Ray it
    started is shut down), while the output still goes to the run's log: Ray's log
    thread would otherwise print late worker lines on the console. Yields whether it
    started a local Ray."""
    import ray

    from medsight_ray import console

    connected = not ray.is_initialized()
    local = init_ray(address)
    if log is not None:
        console.echo_worker_lines()
        console.say(f"logs: {log} (Ray's own: {console.ray_logs_dir()})")
    try:
        yield local
    finally:
        if connected:
            stop_local_ray()
