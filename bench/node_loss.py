"""What does losing a node cost a stage, and a sweep?

    python bench/node_loss.py [--epochs 3] [--out bench/results/node_loss.json]

On a local multi-node cluster (:mod:`medsight_ray.localcluster`: a head with no CPUs and
three worker nodes of 5 logical CPUs), each fault is injected the way a spot instance
disappears, SIGKILL to a node's raylet, 2 s into epoch 2, and set against the same run
undisturbed:

- ``train``: a 2-worker DDP stage, one worker per node; the node of a worker is lost.
  Ray Train restarts the worker group from epoch 1's checkpoint (``fit.max_failures``).
- ``tune``: a sweep of 2 concurrent trials; the node of a trial's driver is lost. Tune
  restarts the trial (``SweepOptions.trial_failures``), and Ray Train resumes its run.

Reported per fault: the epochs lost (work redone: the part of epoch 2 done before the
kill), what the fault cost epoch 2 (from epoch 1's report to epoch 2's, against the
undisturbed run), the extra wall time of the whole run, and whether every metric of
every epoch equals the undisturbed run's (else the largest gap).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from medsight_ray.localcluster import LocalCluster, NodeSpec  # noqa: E402

TINY = ("fit.batch_size=16", "data.image_size=32", "model.backbone.name=resnet10t", "fit.torch_threads=1")
SPACE = """
stage: grading/grading
num_samples: 2
fixed: {{fit.epochs: {epochs}, fit.batch_size: 16, fit.cpus_per_worker: 3, fit.torch_threads: 1,
        data.image_size: 32, model.backbone.name: resnet10t}}
params:
  optim.lr: {{dist: loguniform, low: 1.0e-4, high: 1.0e-1}}
points_to_evaluate: [{{optim.lr: 0.001}}, {{optim.lr: 0.003}}]
"""


def _alive(cluster: LocalCluster, prefix: str) -> list[str]:
    """Node ids of the alive actors whose class name starts with ``prefix``."""
    from ray.util.state import list_actors

    actors = list_actors(address=cluster.dashboard_url, filters=[("state", "=", "ALIVE")], limit=10000)
    return [a.node_id for a in actors if a.class_name.startswith(prefix)]


def _checkpoints(run_dirs: Path) -> int:
    """Checkpoint directories reported so far (not the manager's snapshot file)."""
    return sum(p.is_dir() for p in run_dirs.glob("*/checkpoint_*"))


def run(cluster: LocalCluster, kind: str, data: Path, out: Path, epochs: int, fault: bool) -> dict:
    """One train run or sweep; with ``fault``, lose a node 2 s into epoch 2."""
    if kind == "train":
        sets = [*TINY, f"fit.epochs={epochs}", "fit.cpus_per_worker=1", "fit.placement=STRICT_SPREAD",
                "fit.max_failures=1"]
        args = [sys.executable, "-m", "medsight_ray.train", "--task", "grading", "--data", str(data), "--out",
                str(out), "--address", cluster.address, "--workers", "2"] + [x for s in sets for x in ("--set", s)]
        ckpts, per_epoch1, victim_of = out / "ray", 1, "RayTrainWorker"
    else:
        space = out.parent / f"{out.name}.yaml"
        space.write_text(SPACE.format(epochs=epochs))
        args = [sys.executable, "-m", "medsight_ray.tune", "--space", str(space), "--data", str(data), "--out",
                str(out), "--address", cluster.address, "--max-concurrent", "2", "--no-asha", "--remedies", "0"]
        ckpts, per_epoch1, victim_of = out / "train", 2, "ImplicitFunc"
    started = time.monotonic()
    proc = subprocess.Popen(args, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    record: dict = {"kind": kind, "fault": fault}
    if fault:
        while _checkpoints(ckpts) < per_epoch1:
            if proc.poll() is not None:
                raise RuntimeError(proc.stdout.read()[-3000:])
            time.sleep(0.1)
        epoch1 = time.monotonic()
        time.sleep(2.0)
        names = cluster.node_names()
        victim = next(names[n] for n in _alive(cluster, victim_of) if n in names)
        killed = time.monotonic()
        cluster.kill_node(victim)
        while _checkpoints(ckpts) < 2 * per_epoch1 and proc.poll() is None:
            time.sleep(0.1)
        record.update(victim=victim, work_lost_s=killed - epoch1, epoch2_after_kill_s=time.monotonic() - killed)
    else:
        while _checkpoints(ckpts) < per_epoch1 and proc.poll() is None:
            time.sleep(0.1)
        epoch1 = time.monotonic()
        while _checkpoints(ckpts) < 2 * per_epoch1 and proc.poll() is None:
            time.sleep(0.1)
        record["epoch2_s"] = time.monotonic() - epoch1
    output, _ = proc.communicate()
    if proc.returncode != 0:
        raise RuntimeError(output[-3000:])
    record["wall_s"] = time.monotonic() - started
    summary = json.loads((out / "summary.json").read_text())
    histories = ([summary["runs"][0]["history"]] if kind == "train"
                 else [t["history"] for t in summary["stages"][0]["trials"]])
    record["histories"] = histories
    # Each run's worker-group starts (1-based epoch each started at): [1, 2] is a restart
    # that resumed from epoch 1's checkpoint, [1, 1] one that started over.
    outcomes = ([summary["runs"][0]["outcome"]] if kind == "train"
                else [t["outcome"] for t in summary["stages"][0]["trials"]])
    record["group_starts"] = [[g["from_epoch"] for g in o.get("workers", [])] for o in outcomes]
    record["restarted"] = "resumes it from its last checkpoint" in output or kind == "train"
    if fault:  # capacity back for what follows
        cluster.add_node(NodeSpec(f"{victim}-replacement", cpus=5, object_store_mb=128))
    return record


def max_gap(a: list[list[dict]], b: list[list[dict]]) -> dict[str, float]:
    """Largest absolute difference of each metric over epochs and runs."""
    keys = ("train/loss", "val/auc_macro", "val/f1_macro")
    return {k: max(abs(x[k] - y[k]) for ha, hb in zip(a, b) for x, y in zip(ha, hb)) for k in keys}


def same_metrics(a: list[list[dict]], b: list[list[dict]]) -> bool:
    """Every metric (not the timings) of every epoch of every run equal."""
    def strip(histories: list[list[dict]]) -> list[list[dict]]:
        return [[{k: v for k, v in h.items() if not k.startswith("time/")} for h in hs] for hs in histories]

    return strip(a) == strip(b)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--epochs", type=int, default=3)
    p.add_argument("--rows", type=int, default=160)
    p.add_argument("--out", type=Path, default=ROOT / "bench/results/node_loss.json")
    args = p.parse_args()
    from medsight_ray.data.synth import synthesize

    rows = []
    with tempfile.TemporaryDirectory() as tmp, LocalCluster(head_cpus=0, object_store_mb=128) as cluster:
        for index in (1, 2, 3):
            cluster.add_node(NodeSpec(f"worker-{index}", cpus=5, object_store_mb=128))
        data = Path(tmp) / "data"
        synthesize("grading", data, rows=args.rows, image_size=32, seed=0)
        for kind in ("train", "tune"):
            calm = run(cluster, kind, data, Path(tmp) / f"{kind}-calm", args.epochs, fault=False)
            hit = run(cluster, kind, data, Path(tmp) / f"{kind}-fault", args.epochs, fault=True)
            # What the fault cost epoch 2: from epoch 1's report to epoch 2's, against the
            # undisturbed run's (work lost before the kill + detection + restart).
            recovery = hit["work_lost_s"] + hit["epoch2_after_kill_s"] - calm["epoch2_s"]
            rows.append({"fault": f"{kind}: node of a {'train worker' if kind == 'train' else 'trial driver'} lost",
                         "victim": hit["victim"],
                         "epochs_lost": f"part of epoch 2 ({hit['work_lost_s']:.1f} s of work)",
                         "max_metric_gap": max_gap(calm["histories"], hit["histories"]),
                         "recovery_s": round(recovery, 1), "extra_wall_s": round(hit["wall_s"] - calm["wall_s"], 1),
                         "identical_metrics": same_metrics(calm["histories"], hit["histories"]),
                         "epochs": [[h["epoch"] for h in hs] for hs in hit["histories"]],
                         "calm": calm, "hit": hit})
            print(f"{kind}: recovery {recovery:.1f} s, extra wall {hit['wall_s'] - calm['wall_s']:.1f} s, "
                  f"identical metrics {rows[-1]['identical_metrics']}", flush=True)
    print(f"\n{'fault':<40} {'epochs lost':<30} {'epoch 2 +s':>10} {'extra wall s':>12} {'identical':>9}")
    for r in rows:
        print(f"{r['fault']:<40} {r['epochs_lost']:<30} {r['recovery_s']:>10} {r['extra_wall_s']:>12} "
              f"{str(r['identical_metrics']):>9}")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({"epochs": args.epochs, "rows": rows}, indent=1, default=str))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
