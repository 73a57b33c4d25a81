"""cluster/fake_multinode.yaml: the head's autoscaler adds a worker node when a run asks
for more CPUs than the cluster has, and removes it once it has been idle."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

from medsight_ray.localcluster import LocalCluster

ROOT = Path(__file__).resolve().parents[2]


def test_a_run_that_needs_more_cpus_adds_a_node_which_goes_away_when_idle(synth_dir, tmp_path) -> None:
    data = synth_dir("grading", rows=160)
    sets = ["fit.epochs=1", "fit.batch_size=16", "fit.cpus_per_worker=2", "fit.torch_threads=1",
            "data.image_size=32", "model.backbone.name=resnet10t"]
    # The cluster writes the config's gcs_address itself, on the port its head bound.
    with LocalCluster(head_cpus=1, object_store_mb=128,
                      autoscaling_config=ROOT / "cluster" / "fake_multinode.yaml") as cluster:
        assert len(cluster.alive_nodes()) == 1
        run = subprocess.Popen([sys.executable, "-m", "medsight_ray.train", "--task", "grading", "--data", str(data),
                                "--out", str(tmp_path / "run"), "--address", cluster.address]
                               + [x for s in sets for x in ("--set", s)],
                               cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        added = []
        while run.poll() is None:  # the worker needs 2 CPUs, the head has 1: a node must come
            added = added or [n for n in cluster.alive_nodes() if not n["is_head_node"]]
            time.sleep(1)
        output = run.stdout.read()
        assert run.returncode == 0, output[-3000:]
        assert "waiting for nodes" in output and "completed after 1 epochs" in output
        assert len(added) == 1 and added[0]["resources_total"].get("a10g_standin") == 1  # the g5.xlarge stand-in
        assert "GPU" not in added[0]["resources_total"]
        deadline = time.monotonic() + 90  # idle_timeout_minutes 0.1 = 6 s, plus update rounds
        while len(cluster.alive_nodes()) > 1:
            assert time.monotonic() < deadline, "the idle node was never removed"
            time.sleep(1)
