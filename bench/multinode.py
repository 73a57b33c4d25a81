"""Does a stage trained across nodes learn what it learns on one node?

    python bench/multinode.py [--seeds 3] [--epochs 2] [--out bench/results/multinode.json]

On a local multi-node cluster (:mod:`medsight_ray.localcluster`: a head and two worker
nodes), each seed trains the same 2-worker grading stage three times, with the same
global batch: twice with both workers on one node (``fit.placement=STRICT_PACK``, runs A
and B) and once with one worker per node (``STRICT_SPREAD``, run C).

Two 2-worker runs are not bit-identical even on one node: Ray Data's streaming split
hands each block to whichever worker asks first, so the rows each worker sees differ
from run to run (README, "Repeatable runs"). |A - B| is therefore the noise of a 2-worker
run at a fixed seed, and |A - C| the difference placement makes. The table gives both,
per metric and epoch-averaged, and the JSON every run's history. The test
``tests/integration/test_multinode.py`` takes its tolerance from these figures.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from medsight_ray.localcluster import LocalCluster, NodeSpec  # noqa: E402

METRICS = ("train/loss", "val/auc_macro", "val/f1_macro")
TINY = ("fit.batch_size=16", "fit.cpus_per_worker=1", "data.image_size=32", "model.backbone.name=resnet10t")


def train(address: str, data: Path, out: Path, seed: int, epochs: int, placement: str) -> list[dict]:
    """One 2-worker grading run on the cluster; returns its per-epoch history."""
    sets = [*TINY, f"fit.epochs={epochs}", f"fit.placement={placement}"]
    args = [sys.executable, "-m", "medsight_ray.train", "--task", "grading", "--data", str(data), "--address", address,
            "--workers", "2", "--seed", str(seed), "--out", str(out)] + [x for s in sets for x in ("--set", s)]
    done = subprocess.run(args, cwd=ROOT, capture_output=True, text=True)
    if done.returncode != 0:
        raise RuntimeError(f"train failed ({done.returncode}): {done.stderr[-2000:]}")
    return json.loads((out / "summary.json").read_text())["runs"][0]["history"]


def gaps(a: list[dict], b: list[dict]) -> dict[str, float]:
    """Mean absolute difference per metric over the epochs two histories share."""
    return {m: statistics.fmean(abs(x[m] - y[m]) for x, y in zip(a, b)) for m in METRICS}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--seeds", type=int, default=3)
    p.add_argument("--epochs", type=int, default=2)
    p.add_argument("--rows", type=int, default=240)
    p.add_argument("--out", type=Path, default=ROOT / "bench/results/multinode.json")
    args = p.parse_args()
    from medsight_ray.data.synth import synthesize

    runs: list[dict] = []
    with tempfile.TemporaryDirectory() as tmp, LocalCluster(head_cpus=1) as cluster:
        for name in ("worker-1", "worker-2"):
            cluster.add_node(NodeSpec(name, cpus=3, object_store_mb=128))
        data = Path(tmp) / "data"
        synthesize("grading", data, rows=args.rows, image_size=32, seed=0)
        for seed in range(args.seeds):
            row = {"seed": seed}
            for arm, placement in (("A", "STRICT_PACK"), ("B", "STRICT_PACK"), ("C", "STRICT_SPREAD")):
                row[arm] = train(cluster.address, data, Path(tmp) / f"{seed}{arm}", seed, args.epochs, placement)
                print(f"seed {seed} run {arm} ({placement}): "
                      + " ".join(f"{m} {row[arm][-1][m]:.4f}" for m in METRICS), flush=True)
            row["noise"], row["placement"] = gaps(row["A"], row["B"]), gaps(row["A"], row["C"])
            runs.append(row)
    table = {m: {"noise_mean": statistics.fmean(r["noise"][m] for r in runs),
                 "noise_max": max(r["noise"][m] for r in runs),
                 "placement_mean": statistics.fmean(r["placement"][m] for r in runs),
                 "placement_max": max(r["placement"][m] for r in runs)} for m in METRICS}
    print(f"\n{'metric':<16} {'|A-B| mean':>11} {'|A-B| max':>10} {'|A-C| mean':>11} {'|A-C| max':>10}")
    for m, t in table.items():
        print(f"{m:<16} {t['noise_mean']:>11.4f} {t['noise_max']:>10.4f} {t['placement_mean']:>11.4f} "
              f"{t['placement_max']:>10.4f}")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({"seeds": args.seeds, "epochs": args.epochs, "rows": args.rows,
                                    "table": table, "runs": runs}, indent=1))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
