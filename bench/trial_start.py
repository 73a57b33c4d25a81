"""Where a trial's fixed time goes, inside a running sweep.

    python bench/trial_start.py [--trials 4] [--epochs 2] [--rows 240] [--label NAME]
                                [--set KEY=VALUE ...] [--out bench/results/trial_start.json]

Runs ``python -m medsight_ray.tune`` as a user does (grading, resnet10t at 32 px, batch
16, ``--no-asha``, one trial at a time, the trials' learning rates apart so no trial
repeats another's run) and reads each trial's ``time_parts`` from ``summary.json``: the
controller, the placement group with the worker actors, dataset splits and process
group, the worker's start, the model build, the untrained model's validation, the first
train batch, the epochs, the last checkpoint, the shutdown, and the whole trial
(:func:`medsight_ray.fit.timeline.parts`). The first trial also pays the sweep's own
start (its worker processes are new), so the table shows it apart from the median of
the others. ``--set`` passes config keys to every trial (e.g. ``health.baseline_eval=false``
to see what the start validation costs); ``--label`` names the run in the JSON, which
keeps one entry per label so before/after runs sit side by side.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parent.parent


def space(trials: int, epochs: int) -> dict:
    """The sweep: grading at 32 px with resnet10t, each trial a learning rate of its own."""
    return {"stage": "grading/grading", "num_samples": trials,
            "fixed": {"fit.epochs": epochs, "fit.batch_size": 16, "fit.cpus_per_worker": 0.5, "data.image_size": 32,
                      "model.backbone.name": "resnet10t"},
            "params": {"optim.lr": {"dist": "loguniform", "low": 1.0e-3, "high": 1.0e-2}},
            "points_to_evaluate": [{"optim.lr": 1.0e-3 * (1.0 + 0.5 * i)} for i in range(trials)]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--trials", type=int, default=4)
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--rows", type=int, default=240)
    parser.add_argument("--label", default="current")
    parser.add_argument("--set", dest="overrides", action="append", default=[])
    parser.add_argument("--out", type=Path, default=ROOT / "bench/results/trial_start.json")
    args = parser.parse_args()
    from medsight_ray.data.synth import Knobs, synthesize

    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        synthesize("grading", work / "data", rows=args.rows, image_size=32, seed=0, knobs=Knobs())
        (work / "space.yaml").write_text(yaml.safe_dump(space(args.trials, args.epochs)))
        command = [sys.executable, "-m", "medsight_ray.tune", "--space", str(work / "space.yaml"), "--data",
                   str(work / "data"), "--out", str(work / "out"), "--no-asha", "--remedies", "0",
                   *[x for s in args.overrides for x in ("--set", s)]]
        started = time.perf_counter()
        done = subprocess.run(command, capture_output=True, text=True, check=False)
        wall = time.perf_counter() - started
        if done.returncode != 0:
            raise SystemExit(f"the sweep failed ({done.returncode}):\n{done.stdout[-3000:]}{done.stderr[-3000:]}")
        (stage,) = json.loads((work / "out" / "summary.json").read_text())["stages"]
    trials = [t["time_parts"] for t in stage["trials"]]
    names = list(dict.fromkeys(k for t in trials for k in t))
    rest = trials[1:] or trials
    table = {name: {"first": trials[0].get(name), "median_rest": statistics.median(
        [t[name] for t in rest if name in t]) if any(name in t for t in rest) else None} for name in names}
    print(f"{'part':<44} {'first trial s':>14} {'median of the rest s':>21}")
    for name, row in table.items():
        first = f"{row['first']:.2f}" if row["first"] is not None else "-"
        median = f"{row['median_rest']:.2f}" if row["median_rest"] is not None else "-"
        print(f"{name:<44} {first:>14} {median:>21}")
    print(f"sweep wall time {wall:.1f} s for {len(trials)} trials of {args.epochs} epochs")
    record = json.loads(args.out.read_text()) if args.out.is_file() else {}
    record[args.label] = {"trials": len(trials), "epochs": args.epochs, "rows": args.rows,
                          "overrides": args.overrides, "sweep_wall_s": round(wall, 1), "parts": table,
                          "per_trial": trials}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(record, indent=1))


if __name__ == "__main__":
    main()
