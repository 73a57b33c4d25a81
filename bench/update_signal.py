"""Does the weight-update signal mean the same on any dataset size?

    python bench/update_signal.py [--out bench/results/update_signal.json] [--epochs 3]

Grading on synthetic data at 1x and 10x the rows (400 and 4,000; batch 32, so about 10
and 100 steps an epoch), at four learning rates from far too low to far too high, side
by side in one local Ray. For each run: the epoch's displacement per step
(``train/update_ratio``, what the rules read until now) and the mean change of single
steps (``train/step_update``, :mod:`medsight_ray.fit.stepsize`), at the first epoch (and the
last, in the JSON), and the ratio of the large run's reading to the small run's. A signal that means the same
on any dataset size reads within 1.5x.

The first epoch of each size is not the same point of training (99 steps train further
than 9, and the cosine warm-up spans a share of the steps), so the second table compares
the same steps: at a constant learning rate, the small dataset's first 11 epochs (99
steps, each signal averaged over its epochs) against the large one's first epoch (99
steps). Only how the steps are cut into epochs differs there.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
from pathlib import Path

from medsight_ray.raylocal import set_local_env

set_local_env()

ROOT = Path(__file__).resolve().parent.parent
LRS = (1e-7, 3e-3, 3e-2, 0.3)
ROWS = (400, 4000)
#: Epochs of the small dataset (9 steps each) that hold the large one's first epoch (99).
EQUAL_STEPS_EPOCHS = 11


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", type=Path, default=ROOT / "bench/results/update_signal.json")
    parser.add_argument("--work", type=Path, default=ROOT / "bench/results/update_signal_work")
    parser.add_argument("--epochs", type=int, default=3)
    args = parser.parse_args()
    from medsight_ray.config import apply_overrides
    from medsight_ray.data.synth import Knobs, synthesize
    from medsight_ray.fit.runner import prepare_data, run_stage
    from medsight_ray.raylocal import init_ray
    from medsight_ray.stages.registry import get_stage

    init_ray()
    stage = get_stage("grading")
    rows_out = []

    def run(rows: int, lr: float, epochs: int, schedule: list[str]) -> list[dict]:
        data = args.work / f"grading-{rows}"
        if not (data / "train-00000.parquet").is_file():
            synthesize("grading", data, rows=rows, image_size=32, seed=0, knobs=Knobs())
        cfg = apply_overrides(stage.config_cls(), [
            "fit.cpus_per_worker=0.5", "model.backbone.name=resnet10t", "data.image_size=32", "fit.batch_size=32",
            f"fit.epochs={epochs}", f"optim.lr={lr}", "health.enabled=false", *schedule])
        name = f"rows{rows}-lr{lr:g}-{epochs}ep{'-' + schedule[0].split('=')[1] if schedule else ''}"
        return run_stage(stage, cfg, prepare_data(str(data), "grading"), str(args.work / "ray"), name).history

    # 1. The first epoch of each size, on the stage's schedule (cosine with warm-up).
    for rows in ROWS:
        for lr in LRS:
            history = run(rows, lr, args.epochs, [])
            first, last = history[0], history[-1]
            rows_out.append({"rows": rows, "lr": lr, "steps": last.get("train/steps"),
                             "update_ratio": first.get("train/update_ratio"),
                             "step_update": first.get("train/step_update"),
                             "update_ratio_last": last.get("train/update_ratio"),
                             "step_update_last": last.get("train/step_update")})
            print(rows_out[-1], flush=True)
    table = ["| lr | steps/epoch (1x, 10x) | displacement per step (1x, 10x, ratio) | single steps (1x, 10x, ratio) |",
             "| --- | --- | --- | --- |"]
    for lr in LRS:
        small, large = (next(r for r in rows_out if r["rows"] == n and r["lr"] == lr) for n in ROWS)
        table.append(f"| {lr:g} | {small['steps']:.0f}, {large['steps']:.0f} | {small['update_ratio']:.3g}, "
                     f"{large['update_ratio']:.3g}, {large['update_ratio'] / small['update_ratio']:.2f} | "
                     f"{small['step_update']:.3g}, {large['step_update']:.3g}, "
                     f"{large['step_update'] / small['step_update']:.2f} |")
    print("\n".join(table))

    # 2. The same steps of training: a constant lr (no warm-up, no decay), the small
    # dataset's first 11 epochs of 9 steps against the large one's first epoch of 99.
    # Same model, same lr, same number of updates; only how the steps are cut into
    # epochs differs, which is what a signal that means the same on any size must ignore.
    equal = []
    for lr in LRS:
        small = run(ROWS[0], lr, EQUAL_STEPS_EPOCHS, ["optim.scheduler=constant"])
        (large,) = run(ROWS[1], lr, 1, ["optim.scheduler=constant"])
        row = {"lr": lr, "steps": (sum(h.get("train/steps", 0) for h in small), large.get("train/steps"))}
        for key in ("update_ratio", "step_update"):
            row[key] = (statistics.fmean(h[f"train/{key}"] for h in small), large[f"train/{key}"])
        equal.append(row)
        print(row, flush=True)
    equal_table = ["| lr | steps (1x in 11 epochs, 10x in 1) | displacement per step (1x, 10x, ratio) | "
                   "single steps (1x, 10x, ratio) |", "| --- | --- | --- | --- |"]
    for r in equal:
        (su, lu), (ss, ls) = r["update_ratio"], r["step_update"]
        equal_table.append(f"| {r['lr']:g} | {r['steps'][0]:.0f}, {r['steps'][1]:.0f} | {su:.3g}, {lu:.3g}, "
                           f"{lu / su:.2f} | {ss:.3g}, {ls:.3g}, {ls / ss:.2f} |")
    print("\n".join(equal_table))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({"runs": rows_out, "table": table, "equal_steps": equal,
                                    "equal_steps_table": equal_table}, indent=2))


if __name__ == "__main__":
    sys.exit(main())
