"""Time to target: ``python -m medsight_ray.tune`` against the vanilla Ray Tune sweep.

    python bench/time_to_target.py [--tasks concepts grading] [--seeds 0 1 2] [--samples 4]
                                   [--epochs E] [--rows 600] [--size 48]
                                   [--out bench/results/time_to_target.json]

For each seed and task, interleaved (the order of the two ways alternates by seed, so a
slow spell of the machine falls on both), the same search space (``tune_spaces/<stage>.yaml``,
its first points the seeds' broken settings), data and trial budget run two ways:

- (a) ``python -m medsight_ray.tune --space ... --seed S``, as a user runs it;
- (b) ``bench/vanilla_sweep.py``: ``Tuner`` + ``OptunaSearch`` + ``ASHAScheduler`` over a
  plain PyTorch loop with a ``DataLoader``, no monitor and no remedies.

Measured per run, from the moment its process starts:

- wall time and CPU-seconds (the whole machine's busy time, sampled every 0.5 s: Ray's
  processes are not all children of the sweep's) until the first report that meets every
  target of the stage (``medsight_ray.stages.targets``);
- the best primary metric at the end, the whole run's wall time and CPU-seconds;
- trial-epochs trained (a trial that took another's result trained none).

The table gives per task the median over seeds of each figure and the ratio (a)/(b) of
the medians; the JSON keeps every run.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import psutil

ROOT = Path(__file__).resolve().parent.parent
SPACES = {"concepts": "concepts.yaml", "grading": "grading.yaml"}
STAGES = {"concepts": "concepts/concepts", "grading": "grading/grading"}


class CpuClock:
    """The machine's busy CPU-seconds since start, sampled in a thread: ``at(t)`` is the
    busy time at wall-clock ``t`` (the last sample before it)."""

    def __init__(self, every: float = 0.5) -> None:
        self.every = every
        self.samples: list[tuple[float, float]] = []
        self._start = self._busy()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    @staticmethod
    def _busy() -> float:
        times = psutil.cpu_times()
        # guest time is already inside user time on Linux; idle and iowait are not busy.
        return float(sum(getattr(times, k, 0.0) for k in ("user", "nice", "system", "irq", "softirq", "steal")))

    def _run(self) -> None:
        while not self._stop.is_set():
            self.samples.append((time.time(), self._busy() - self._start))
            self._stop.wait(self.every)

    def __enter__(self) -> CpuClock:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self.samples.append((time.time(), self._busy() - self._start))

    def at(self, t: float) -> float:
        before = [busy for when, busy in self.samples if when <= t]
        return before[-1] if before else 0.0


def trial_rows(experiment: Path) -> dict[str, list[dict[str, Any]]]:
    """Every trial's reports, from Tune's ``result.json`` files (one JSON per line)."""
    out: dict[str, list[dict[str, Any]]] = {}
    for file in sorted(experiment.glob("*/result.json")):
        rows = [json.loads(line) for line in file.read_text().splitlines() if line.strip()]
        if rows:
            out[str(rows[0].get("trial_id") or file.parent.name)] = rows
    return out


def meets(row: dict[str, Any], targets: list[tuple[str, float]]) -> bool:
    values = [row.get(key) for key, _ in targets]
    return all(isinstance(v, (int, float)) and v >= t for v, (_, t) in zip(values, targets, strict=True))


def trained_epochs(trials: list[dict[str, Any]] | None, rows: dict[str, list[dict[str, Any]]]) -> int:
    """Trial-epochs trained. (a): from its ``summary.json`` trials, where a trial that took
    another's result trained only the epochs beyond its source's (a continued ASHA cut);
    (b) (``trials`` None): every report is an epoch trained."""
    if trials is None:
        return sum(len(r) for r in rows.values())
    runs = {t["trial_id"]: t for t in trials}
    total = 0
    for t in runs.values():
        source = runs.get(t.get("reused_from") or "")
        total += max(0, t["epochs_run"] - (source["epochs_run"] if source else 0))
    return total


def run_one(way: str, task: str, data: Path, work: Path, seed: int, samples: int, epochs: int | None,
            size: int) -> dict[str, Any]:
    """One sweep, timed; its figures."""
    from medsight_ray.stages.targets import STAGE_TARGETS

    out = work / f"{way}-{task}-{seed}"
    space = str(ROOT / "tune_spaces" / SPACES[task])
    # The demo's settings; the epochs are the space's own (6 for stage 1, 8 for grading).
    sets = [f"data.image_size={size}", "fit.cpus_per_worker=0.5"] + ([f"fit.epochs={epochs}"] if epochs else [])
    common = ["--space", space, "--data", str(data), "--out", str(out), "--seed", str(seed), "--samples",
              str(samples), *[x for s in sets for x in ("--set", s)]]
    command = ([sys.executable, "-m", "medsight_ray.tune", *common] if way == "medsight"
               else [sys.executable, str(ROOT / "bench" / "vanilla_sweep.py"), *common])
    started = time.time()
    with CpuClock() as clock:
        done = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, check=False)
    ended = time.time()
    if done.returncode not in (0, 1):  # 1: the product found no usable trial (a result)
        raise SystemExit(f"{way} {task} seed {seed} failed ({done.returncode}):\n{done.stdout[-3000:]}"
                         f"{done.stderr[-3000:]}")
    targets = STAGE_TARGETS[STAGES[task]]
    primary = targets[0][0]  # the stage's primary metric comes first
    rows = trial_rows(out / STAGES[task].replace("/", "-"))
    reports = sorted((r for rs in rows.values() for r in rs), key=lambda r: r.get("timestamp", 0))
    hit = next((r for r in reports if meets(r, targets)), None)
    values = [r[primary] for r in reports if isinstance(r.get(primary), (int, float))]
    trials = json.loads((out / "summary.json").read_text())["stages"][0]["trials"] if way == "medsight" else None
    parts: dict[str, float] = {}
    for trial in trials or []:  # where (a)'s trial time goes, summed over its trials
        for part, seconds in (trial.get("time_parts") or {}).items():
            parts[part] = round(parts.get(part, 0.0) + float(seconds), 1)
    return {"way": way, "task": task, "seed": seed, "trials": len(rows), "time_parts": parts,
            "wall_s": round(ended - started, 1), "cpu_s": round(clock.at(ended), 1),
            "target_wall_s": round(hit["timestamp"] - started, 1) if hit else None,
            "target_cpu_s": round(clock.at(hit["timestamp"]), 1) if hit else None,
            "best": round(max(values), 4) if values else None, "primary": primary,
            "trial_epochs": trained_epochs(trials, rows)}


def median(values: list[Any]) -> float | None:
    known = [v for v in values if v is not None]
    return statistics.median(known) if known else None


def spread(values: list[Any]) -> float | None:
    known = [v for v in values if v is not None]
    return round(max(known) - min(known), 4) if known else None


def table(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """Per task: the median over seeds of each figure per way, and (a)/(b)."""
    out: dict[str, Any] = {}
    for task in dict.fromkeys(r["task"] for r in runs):
        row: dict[str, Any] = {}
        for way in ("medsight", "vanilla"):
            mine = [r for r in runs if r["task"] == task and r["way"] == way]
            row[way] = {k: median([r[k] for r in mine]) for k in
                        ("target_wall_s", "target_cpu_s", "wall_s", "cpu_s", "best", "trial_epochs")}
            row[way]["reached"] = f"{sum(r['target_wall_s'] is not None for r in mine)}/{len(mine)}"
            row[way]["best_spread"] = spread([r["best"] for r in mine])
        row["ratio"] = {k: round(row["medsight"][k] / row["vanilla"][k], 2)
                        if row["medsight"][k] and row["vanilla"][k] else None
                        for k in ("target_wall_s", "target_cpu_s", "wall_s", "cpu_s", "trial_epochs")}
        out[task] = row
    return out


def show(summary: dict[str, Any]) -> None:
    keys = ("reached", "target_wall_s", "target_cpu_s", "wall_s", "cpu_s", "trial_epochs", "best", "best_spread")
    print(f"{'task':<10} {'way':<9}" + "".join(f"{k:>15}" for k in keys))
    for task, row in summary.items():
        for way in ("medsight", "vanilla", "ratio"):
            cells = [row[way].get(k) for k in keys]
            print(f"{task:<10} {way:<9}" + "".join(f"{'-' if c is None else c:>15}" for c in cells))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--tasks", nargs="+", default=list(SPACES), choices=list(SPACES))
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    parser.add_argument("--samples", type=int, default=4)
    parser.add_argument("--epochs", type=int, help="override the spaces' own fit.epochs")
    parser.add_argument("--rows", type=int, default=600)
    parser.add_argument("--size", type=int, default=48)
    parser.add_argument("--out", type=Path, default=ROOT / "bench/results/time_to_target.json")
    args = parser.parse_args()
    from medsight_ray.data.synth import synthesize

    runs: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        data = {}
        for task in args.tasks:
            data[task] = work / f"data-{task}"
            synthesize(task, data[task], rows=args.rows, image_size=args.size, seed=0)
        for i, seed in enumerate(args.seeds):
            for task in args.tasks:
                ways = ("medsight", "vanilla") if i % 2 == 0 else ("vanilla", "medsight")
                for way in ways:
                    runs.append(run_one(way, task, data[task], work, seed, args.samples, args.epochs, args.size))
                    print(json.dumps(runs[-1]), flush=True)
    summary = table(runs)
    show(summary)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({"settings": vars(args) | {"out": str(args.out)}, "summary": summary,
                                    "runs": runs}, indent=1))


if __name__ == "__main__":
    main()
