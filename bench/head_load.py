"""What does a sweep put on the head node, per trial? The figures behind cluster/README.md's
sizing section.

    python bench/head_load.py [--concurrent 1,2] [--out bench/results/head_load.json]

On a local multi-node cluster (:mod:`medsight_ray.localcluster`: a head of 2 CPUs, where
trial drivers run, and two worker nodes of 3 CPUs, where each trial's Train worker, taking
2 CPUs, runs), a grading sweep of 2 trials × 3 epochs runs with 1, then 2, trials at once.
Every second the bench sums the resident memory (RSS) of the head node's processes by
role (GCS, raylet, dashboard and its agents, the sweep's driver), and of the per-trial
actors on every node (``ImplicitFunc``: the trial's driver; ``TrainController``;
``SplitCoordinator``: Ray Data's), since Ray places those where CPUs are free. It reports
the peak of each, the growth per concurrent trial, and the checkpoint bytes a trial keeps
(``fit.keep_checkpoints`` best plus the latest).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import threading
import time
from collections import defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from medsight_ray.localcluster import LocalCluster, NodeSpec  # noqa: E402

SPACE = """
stage: grading/grading
num_samples: 2
fixed: {fit.epochs: 3, fit.batch_size: 16, fit.cpus_per_worker: 2, fit.torch_threads: 1,
        data.image_size: 64, model.backbone.name: resnet10t}
params:
  optim.lr: {dist: loguniform, low: 1.0e-4, high: 1.0e-1}
points_to_evaluate: [{optim.lr: 0.001}, {optim.lr: 0.003}]
"""


def _role(name: str, cmdline: str) -> str:
    for actor in ("ImplicitFunc", "TrainController", "SplitCoordinator", "RayTrainWorker"):
        if actor in name or actor in cmdline:
            return actor
    if name.startswith("ray::"):
        return "other Ray actors and tasks"
    for process in ("gcs_server", "raylet", "dashboard", "medsight_ray.tune"):
        if process in name or process in cmdline:
            return process
    return "Ray agents and monitors"


#: The actors each running trial adds, wherever Ray places them (its driver, Ray Train's
#: controller, Ray Data's split coordinator); on aws.yaml's head they sit beside Ray's own.
PER_TRIAL = ("ImplicitFunc", "TrainController", "SplitCoordinator")


def node_processes(cluster: LocalCluster, name: str) -> list:
    """A node's processes: its process's tree (for the head: GCS, raylet, dashboard,
    agents and the workers its raylet started)."""
    import psutil

    root = psutil.Process(cluster.processes[name].pid)
    return [root, *root.children(recursive=True)]


def sample(cluster: LocalCluster, stop: threading.Event, peaks: dict[str, float], driver: list) -> None:
    """Every second: RSS of the head's processes by role, plus the sweep's driver (it
    runs where ``ray job submit`` puts it: the head), and of the per-trial actors on
    every node; keeps each figure's peak."""
    import psutil

    while not stop.is_set():
        by_role: dict[str, float] = defaultdict(float)
        for node in cluster.processes:
            for proc in node_processes(cluster, node) + (driver if node == "head" else []):
                try:
                    role = _role(proc.name(), " ".join(proc.cmdline()))
                    mib = proc.memory_info().rss / 2**20
                except psutil.Error:
                    continue
                if role in PER_TRIAL:
                    by_role[f"per-trial actors (all nodes): {role}"] += mib
                elif node == "head":
                    by_role[role] += mib
        by_role["head, without per-trial actors"] = sum(v for k, v in by_role.items() if not k.startswith("per-"))
        by_role["per-trial actors, total"] = sum(v for k, v in by_role.items() if k.startswith("per-trial actors ("))
        for role, mib in by_role.items():
            peaks[role] = max(peaks.get(role, 0.0), mib)
        time.sleep(1.0)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--concurrent", default="1,2")
    p.add_argument("--out", type=Path, default=ROOT / "bench/results/head_load.json")
    args = p.parse_args()
    import psutil

    from medsight_ray.data.synth import synthesize

    results = {}
    with tempfile.TemporaryDirectory() as tmp, LocalCluster(head_cpus=2, object_store_mb=256) as cluster:
        for name in ("worker-1", "worker-2"):
            cluster.add_node(NodeSpec(name, cpus=3, object_store_mb=256))
        data = Path(tmp) / "data"
        synthesize("grading", data, rows=400, image_size=64, seed=0)
        space = Path(tmp) / "space.yaml"
        space.write_text(SPACE)
        for concurrent in [int(c) for c in args.concurrent.split(",")]:
            out = Path(tmp) / f"sweep{concurrent}"
            peaks: dict[str, float] = {}
            proc = subprocess.Popen([sys.executable, "-m", "medsight_ray.tune", "--space", str(space), "--data",
                                     str(data), "--out", str(out), "--address", cluster.address, "--max-concurrent",
                                     str(concurrent), "--no-asha", "--remedies", "0"],
                                    cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
            stop = threading.Event()
            sampler = threading.Thread(target=sample, args=(cluster, stop, peaks, [psutil.Process(proc.pid)]))
            sampler.start()
            output, _ = proc.communicate()
            stop.set()
            sampler.join()
            if proc.returncode != 0:
                raise RuntimeError(output[-3000:])
            kept = [sum(f.stat().st_size for f in d.rglob("*") if f.is_file()) / 2**20
                    for d in (out / "train").iterdir() if d.is_dir()]
            results[concurrent] = {"peak_rss_mib": {k: round(v) for k, v in sorted(peaks.items())},
                                   "checkpoint_mib_per_trial": round(max(kept), 1)}
            print(f"{concurrent} at once: head peak {peaks['head, without per-trial actors']:.0f} MiB, "
                  f"per-trial actors {peaks['per-trial actors, total']:.0f} MiB; "
                  f"checkpoints {max(kept):.1f} MiB a trial", flush=True)
    roles = sorted({r for v in results.values() for r in v["peak_rss_mib"]})
    print(f"\n{'peak RSS on the head, MiB':<30}" + "".join(f"{f'{c} at once':>12}" for c in results))
    for role in roles:
        print(f"{role:<30}" + "".join(f"{v['peak_rss_mib'].get(role, 0):>12}" for v in results.values()))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=1))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
