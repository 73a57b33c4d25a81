"""More than one node, on this machine: a stage across nodes, a lost node, a sweep job
across nodes whose trial driver's node is lost, an import decoded across nodes.

One local multi-node cluster for the module (:class:`medsight_ray.localcluster.LocalCluster`:
a head with no CPUs, so that every driver and worker runs on a worker node, and three
worker nodes of 5 logical CPUs). Drivers run as subprocesses: this test process holds the
session's own local Ray, and a driver cannot join two clusters.
"""

from __future__ import annotations

import contextlib
import json
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from medsight_ray.localcluster import LocalCluster, NodeSpec

ROOT = Path(__file__).resolve().parents[2]
TINY = ["fit.batch_size=16", "data.image_size=32", "model.backbone.name=resnet10t", "fit.torch_threads=1"]



@pytest.fixture(scope="module")
def cluster() -> Iterator[LocalCluster]:
    with LocalCluster(head_cpus=0, object_store_mb=128) as local:
        for index in (1, 2, 3):
            local.add_node(NodeSpec(f"worker-{index}", cpus=5, object_store_mb=128))
        yield local


def _train_workers(cluster: LocalCluster) -> dict[str, dict]:
    """Every Ray Train worker actor the cluster has seen, by actor id."""
    from ray.util.state import list_actors

    actors = list_actors(address=cluster.dashboard_url, filters=[("class_name", "=", "RayTrainWorker")],
                         limit=10000, raise_on_missing_output=False)
    return {a.actor_id: {"node": a.node_id, "state": a.state} for a in actors}


def _train(cluster: LocalCluster, data: Path, out: Path, *sets: str) -> subprocess.Popen:
    args = [sys.executable, "-m", "medsight_ray.train", "--task", "grading", "--data", str(data), "--out", str(out),
            "--address", cluster.address, "--workers", "2", "--seed", "0"]
    return subprocess.Popen(args + [x for s in [*TINY, *sets] for x in ("--set", s)], cwd=ROOT,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def _finish(proc: subprocess.Popen, out: Path, timeout: float = 300) -> dict:
    output, _ = proc.communicate(timeout=timeout)
    assert proc.returncode == 0, output[-3000:]
    return json.loads((out / "summary.json").read_text())["runs"][0]


def test_a_stage_spreads_its_workers_over_nodes_and_learns_as_on_one_node(cluster, synth_dir, tmp_path) -> None:
    """2 DDP workers, one per node (STRICT_SPREAD), against the same run with both on one
    node (STRICT_PACK): same seed and global batch. The noise of 2-worker runs at a fixed
    seed on one cluster, measured by ``bench/multinode.py`` (BENCHMARKS.md, "Across
    nodes"), is zero: repeated runs on one node, and runs across nodes, were bit-identical
    in every metric over 3 seeds. So every metric of every epoch must be equal."""
    data = synth_dir("grading", rows=160)
    before = set(_train_workers(cluster))
    # Both runs at once (the cluster holds both): the metrics cannot depend on timing.
    procs = {placement: _train(cluster, data, tmp_path / placement, "fit.epochs=2", "fit.cpus_per_worker=1",
                               f"fit.placement={placement}") for placement in ("STRICT_SPREAD", "STRICT_PACK")}
    runs = {placement: _finish(proc, tmp_path / placement) for placement, proc in procs.items()}
    # The run's summary records each worker's node, as Ray placed it.
    nodes = {}
    for placement, run in runs.items():
        (group,) = run["outcome"]["workers"]
        assert group["from_epoch"] == 1 and [r["rank"] for r in group["ranks"]] == [0, 1]
        assert {r["node_ip"] for r in group["ranks"]} == {"127.0.0.1"}
        nodes[placement] = {r["node_id"] for r in group["ranks"]}
    assert len(nodes["STRICT_SPREAD"]) == 2 and len(nodes["STRICT_PACK"]) == 1
    # And those are the nodes Ray's state API saw the runs' workers on.
    seen = {w["node"] for k, w in _train_workers(cluster).items() if k not in before}
    assert seen == nodes["STRICT_SPREAD"] | nodes["STRICT_PACK"]
    spread, packed = runs["STRICT_SPREAD"]["history"], runs["STRICT_PACK"]["history"]
    assert [h["epoch"] for h in spread] == [h["epoch"] for h in packed] == [1, 2]
    for a, b in zip(spread, packed):
        metrics = [k for k in a if not k.startswith("time/")]
        assert {k: a[k] for k in metrics} == {k: b[k] for k in metrics}
    # And both learned: the loss fell and the AUC is far above chance (0.5).
    for history in (spread, packed):
        assert history[-1]["train/loss"] < history[0]["train/loss"] and history[-1]["val/auc_macro"] > 0.7


def test_an_import_decoded_across_nodes_writes_the_serial_import_byte_for_byte(cluster, tmp_path) -> None:
    """``data import --address`` on the cluster (its decode tasks on the worker nodes: the
    head has no CPUs) writes exactly the files of the one-process import. The nodes add
    no cores on this machine, so this shows correctness, not speed."""
    from medsight_ray.data.importers.folders import import_class_folders
    from tests.conftest import FIXTURES

    import_class_folders(FIXTURES / "digits4", tmp_path / "serial", image_size=32, mode="L", seed=3)
    run = subprocess.run([sys.executable, "-m", "medsight_ray.data", "import", "folders", "--root",
                          str(FIXTURES / "digits4"), "--out", str(tmp_path / "cluster"), "--image-size", "32",
                          "--mode", "L", "--seed", "3", "--address", cluster.address],
                         cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stdout[-2000:] + run.stderr[-2000:]
    files = {p.name: p.read_bytes() for p in sorted((tmp_path / "serial").glob("*.parquet"))}
    assert files and files == {p.name: p.read_bytes() for p in sorted((tmp_path / "cluster").glob("*.parquet"))}


def _registered(runs: Path) -> dict[str, int]:
    """Run name -> how many checkpoints Ray Train's controller has registered for it (in
    its checkpoint manager's snapshot), for the runs under ``runs`` that have one: a
    restart resumes from the newest (a checkpoint directory appears before that). With
    one checkpoint an epoch, that is the epochs a restart keeps."""
    found = {}
    for snapshot in runs.glob("*/checkpoint_manager_snapshot.json"):
        with contextlib.suppress(ValueError):  # being written
            if count := len(json.loads(snapshot.read_text()).get("checkpoint_results") or []):
                found[snapshot.parent.name] = count
    return found


def _registered_runs(runs: Path) -> int:
    """How many runs under ``runs`` have a registered checkpoint."""
    return len(_registered(runs))


def test_losing_a_node_mid_epoch_restarts_the_stage_from_its_last_checkpoint(cluster, synth_dir, tmp_path) -> None:
    """SIGKILL the raylet of a node holding a train worker during epoch 2: the worker group
    restarts from epoch 1's checkpoint on the nodes left, losing at most that epoch, and
    the run finishes with every epoch once in its history and the health monitor's state."""
    data = synth_dir("grading", rows=160)
    out = tmp_path / "lost"
    before = set(_train_workers(cluster))
    proc = _train(cluster, data, out, "fit.epochs=3", "fit.cpus_per_worker=1", "fit.placement=STRICT_SPREAD",
                  "fit.max_failures=1")
    deadline = time.monotonic() + 240
    # Epoch 1's checkpoint registered (not only written): a restart resumes from it.
    while not _registered_runs(out / "ray"):
        assert proc.poll() is None and time.monotonic() < deadline, "epoch 1 never finished"
        time.sleep(0.2)
    names = cluster.node_names()
    first = {k: w for k, w in _train_workers(cluster).items() if k not in before and w["state"] == "ALIVE"}
    victim = next(names[w["node"]] for w in first.values() if w["node"] in names)
    # Epochs kept before the kill; more may register before the node goes (never fewer).
    (kept,) = _registered(out / "ray").values()
    cluster.kill_node(victim)
    run = _finish(proc, out)
    assert run["status"] == "completed"
    assert [h["epoch"] for h in run["history"]] == [1, 2, 3]
    assert run["outcome"]["epochs_run"] == 3 and not run["diagnoses"]
    restarted = {k: w for k, w in _train_workers(cluster).items() if k not in before and k not in first}
    assert len(restarted) == 2  # a new group of 2 finished the run, on the nodes left
    assert cluster.node_record(victim)["node_id"] not in {w["node"] for w in restarted.values()}
    # The summary records both groups: the first from epoch 1 with a rank on the lost
    # node, the restart from the newest checkpoint registered when the node went, so at
    # most the epoch in flight was lost (which epoch that was is the race's, not ours).
    first_group, second_group = run["outcome"]["workers"]
    assert first_group["from_epoch"] == 1 and kept + 1 <= second_group["from_epoch"] <= 3
    lost = cluster.node_record(victim)["node_id"]
    assert lost in {r["node_id"] for r in first_group["ranks"]}
    assert {r["node_id"] for r in second_group["ranks"]} == {w["node"] for w in restarted.values()}
    # Capacity back for the tests that follow.
    cluster.add_node(NodeSpec(f"{victim}-replacement", cpus=5, object_store_mb=128))


SPACE = """
stage: grading/grading
num_samples: 2
fixed:
  fit.epochs: 3
  fit.batch_size: 16
  fit.cpus_per_worker: 3
  fit.torch_threads: 1
  data.image_size: 32
  model.backbone.name: resnet10t
params:
  optim.lr: {dist: loguniform, low: 1.0e-4, high: 1.0e-1}
points_to_evaluate:
  - {optim.lr: 0.001}
  - {optim.lr: 0.003}
"""


def test_a_sweep_job_runs_trials_on_different_nodes_and_survives_losing_a_trial_driver(
        cluster, synth_dir, tmp_path) -> None:
    """``ray job submit`` a 2-trial sweep (2 at once; a trial's worker takes 3 of a node's 5
    CPUs, so the two trials train on different nodes) with storage on a shared file://
    path; kill the node whose raylet hosts a trial's driver (the head has no CPUs, so every
    driver is on a worker node). Tune restarts that trial, Train resumes it from its
    checkpoint, and the sweep finishes with both trials complete."""
    data = synth_dir("grading", rows=160)
    space = tmp_path / "space.yaml"
    space.write_text(SPACE)
    out = tmp_path / "sweep"
    before = set(_train_workers(cluster))
    job = subprocess.Popen(
        [str(Path(sys.executable).parent / "ray"), "job", "submit", "--address", cluster.dashboard_url,
         "--working-dir", str(ROOT), "--", "python", "-m", "medsight_ray.tune", "--space", str(space),
         "--data", str(data), "--out", str(out), "--storage", f"file://{out / 'storage'}",
         "--max-concurrent", "2", "--no-asha", "--remedies", "0"],
        cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    deadline = time.monotonic() + 300
    while _registered_runs(out / "storage" / "train") < 2:  # both trials' epoch 1 registered
        assert job.poll() is None and time.monotonic() < deadline, job.stdout.read()[-3000:] if job.poll() else "slow"
        time.sleep(0.3)
    from ray.util.state import list_actors

    names = cluster.node_names()
    kept = _registered(out / "storage" / "train")  # epochs each trial keeps before the kill
    actors = list_actors(address=cluster.dashboard_url, filters=[("state", "=", "ALIVE")], limit=10000)
    drivers = [a.node_id for a in actors if a.class_name.startswith("ImplicitFunc")]
    workers = {k: w for k, w in _train_workers(cluster).items() if k not in before and w["state"] == "ALIVE"}
    assert len({w["node"] for w in workers.values()}) == 2  # the two trials train on different nodes
    assert len(drivers) == 2 and all(node in names for node in drivers)
    cluster.kill_node(names[drivers[0]])
    output, _ = job.communicate(timeout=420)
    assert job.returncode == 0, output[-4000:]
    assert "restart 1 of 1 resumes it from its last checkpoint" in output
    summary = json.loads((out / "summary.json").read_text())
    trials = summary["stages"][0]["trials"]
    assert [t["status"] for t in trials] == ["completed", "completed"]
    assert all([h["epoch"] for h in t["history"]] == [1, 2, 3] for t in trials)
    # The restarted trial resumed from the newest checkpoint registered when its driver's
    # node went (a second worker group from the epoch after it): no trial started over,
    # and at most the epoch in flight was lost.
    starts = {t["trial_id"]: [g["from_epoch"] for g in t["outcome"]["workers"]] for t in trials}
    assert all(s[0] == 1 for s in starts.values())
    restarted = {trial: s[1:] for trial, s in starts.items() if s[1:]}
    # The killed trial restarted. The other may have restarted too: Ray places its
    # controller and, at times, its train worker on the node that went, beside the driver.
    assert 1 <= len(restarted) <= 2
    for trial, (resumed,) in restarted.items():
        assert kept[f"train-{trial}"] + 1 <= resumed <= 3
