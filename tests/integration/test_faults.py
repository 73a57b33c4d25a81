"""Faults and safe defaults: a train worker killed mid-epoch, loopback-only listeners."""

from __future__ import annotations

import ast
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from medsight_ray.config import apply_overrides
from medsight_ray.fit.runner import prepare_data, run_stage
from medsight_ray.stages.registry import get_stage

pytestmark = [pytest.mark.ray, pytest.mark.usefixtures("ray_local")]

TINY = ["fit.batch_size=16", "fit.cpus_per_worker=0.5", "data.image_size=32", "model.backbone.name=resnet10t"]


def _session_ray() -> str:
    """The shared Ray's dashboard, named: with no address, Ray's state API refuses to
    guess when another Ray runs on the machine (a CLI's own, a local cluster's)."""
    from ray._private.worker import get_dashboard_url

    return f"http://{get_dashboard_url()}"


def _alive_train_workers() -> list[Any]:
    """The alive Train worker actors (``actor_id``, ``pid``) on the shared Ray."""
    from ray.util.state import list_actors

    return list_actors(address=_session_ray(), filters=[("class_name", "=", "RayTrainWorker"), ("state", "=", "ALIVE")],
                       limit=10000)


def _train_worker_ids() -> set[str]:
    from ray.util.state import list_actors

    return {a.actor_id for a in list_actors(address=_session_ray(), filters=[("class_name", "=", "RayTrainWorker")],
                                            limit=10000)}


def test_killed_train_worker_restores_from_the_last_checkpoint(synth_dir, tmp_path: Path) -> None:
    """SIGKILL the only train worker during epoch 2; FailureConfig restarts the worker group
    from epoch 1's checkpoint and the run completes all 3 epochs, losing only epoch 2's work."""
    stage = get_stage("grading")
    cfg = apply_overrides(stage.config_cls(), [*TINY, "fit.epochs=3", "fit.max_failures=1"])
    data = prepare_data(str(synth_dir("grading", rows=240)), "grading")
    outcome: dict = {}
    # Other tests' workers may still be alive on the shared Ray: this run's are the new ones.
    before = _train_worker_ids()
    runner = threading.Thread(target=lambda: outcome.update(result=run_stage(stage, cfg, data, str(tmp_path), "kill")))
    runner.start()
    run_dir = tmp_path / "kill"
    deadline = time.monotonic() + 300
    while not list(run_dir.glob("checkpoint_2*")):  # epoch 1 reported
        assert runner.is_alive() and time.monotonic() < deadline, "epoch 1 never finished"
        time.sleep(0.2)
    (worker,) = [a for a in _alive_train_workers() if a.actor_id not in before]  # the run's one worker
    os.kill(worker.pid, signal.SIGKILL)
    runner.join(timeout=400)
    result = outcome["result"]
    assert result.status == "completed", result.error
    assert [h["epoch"] for h in result.history] == [1, 2, 3]  # every epoch once: resumed, nothing repeated
    assert result.epochs_run == 3 and result.checkpoint
    restarted = _train_worker_ids() - before - {worker.actor_id}
    assert len(restarted) == 1  # a new worker group (of one) finished the run


def _listening_addresses() -> set[str]:
    import psutil

    pids = {p.pid for p in psutil.Process().children(recursive=True)}
    return {c.laddr.ip for c in psutil.net_connections(kind="inet")
            if c.status == psutil.CONN_LISTEN and c.pid in pids}


LOOPBACK = {"127.0.0.1", "::1", "::ffff:127.0.0.1"}


def test_local_ray_listens_on_loopback_only() -> None:
    addresses = _listening_addresses()
    assert addresses and addresses <= LOOPBACK, addresses


def test_loopback_holds_even_when_ray_was_imported_first() -> None:
    """Ray reads its cluster switch at import; a script that imports ray before
    medsight_ray (a benchmark, a notebook) must still get a loopback-only local Ray."""
    script = ("import ray, psutil\n"
              "from medsight_ray.raylocal import init_ray\n"
              "init_ray(num_cpus=1)\n"
              "pids = {p.pid for p in psutil.Process().children(recursive=True)}\n"
              "print(sorted({c.laddr.ip for c in psutil.net_connections(kind='inet')\n"
              "              if c.status == psutil.CONN_LISTEN and c.pid in pids}))\n"
              "print(ray.nodes()[0]['NodeManagerAddress'])\n")
    env = {k: v for k, v in os.environ.items() if not k.startswith("RAY_")}
    proc = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]
    *_, listening, node = proc.stdout.strip().splitlines()
    assert set(ast.literal_eval(listening)) <= LOOPBACK and node == "127.0.0.1", proc.stdout
