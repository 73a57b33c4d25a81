"""What does Ray cost over a plain PyTorch loop?

    python bench/ray_overhead.py [--rows 1000] [--size 64] [--epochs 8] [--rounds 2]
                                 [--arms ray,ray_1thread,plain] [--out bench/results/ray_overhead.json]

Arm ``ray``: ``python -m medsight_ray.train --task grading`` (local Ray, one Train worker,
Ray Data from parquet, health monitor, a checkpoint per epoch). Arm ``plain``: this file
run with ``--plain``, the seeds' style and the physical floor: the same parquet rows
decoded by the same ``decode_batch`` (same augmentation), the same model, optimiser,
schedule, loss and per-epoch validation and metrics, in one process with no Ray and no
checkpoints. Each arm runs in a fresh process, alternating, ``--rounds`` times.

Arm ``ray_1thread`` is arm ``ray`` with ``fit.torch_threads=1``: Ray's own default for a
worker that reserves 1 CPU, which the CLI overrides on a local Ray.

Reported per arm: wall seconds of the whole process, seconds inside epochs (sum of the
per-epoch times each arm records), the start-up cost (wall minus epochs: imports, Ray
start, data check, worker start, shutdown) and, for the Ray arms, its phases timed from
the output lines. Target: ray / plain <= 1.25 in wall time.
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

ROOT = Path(__file__).resolve().parents[1]


def plain_loop(data: str, epochs: int, overrides: list[str]) -> dict:
    """Train grading for ``epochs`` without Ray; returns per-epoch seconds and the metric."""
    import numpy as np
    import pyarrow as pa
    import pyarrow.parquet as pq
    import torch

    from medsight_ray.config import apply_overrides, to_dict
    from medsight_ray.data.augment import augment, epoch_generator
    from medsight_ray.data.pipeline import decode_batch
    from medsight_ray.data.stats import label_stats
    from medsight_ray.data.store import list_dataset, read_info
    from medsight_ray.fit.optim import Schedule, build_optimizer
    from medsight_ray.fit.stage import Context
    from medsight_ray.stages.registry import get_stage

    stage = get_stage("grading")
    cfg = apply_overrides(stage.config_cls(), overrides + [f"fit.epochs={epochs}"])
    files = list_dataset(data)
    info = read_info(files)
    tables = {s: pa.concat_tables([pq.read_table(p) for p in files.by_split[s]]) for s in ("train", "val")}
    stats = label_stats(files, info)
    torch.manual_seed(cfg.fit.seed)
    model = stage.build_model(cfg, info)
    model.set_trainable(stage.trainable_parts(cfg, 0))
    optimizer = build_optimizer(stage.param_groups(model, cfg), cfg.optim)
    batch_size = cfg.fit.batch_size
    steps = tables["train"].num_rows // batch_size
    schedule = Schedule(optimizer, cfg.optim, steps * epochs)
    ctx = Context(cfg, info, stats, torch.device("cpu"), model)
    stage.prepare(ctx)
    pipe = to_dict(cfg.data)
    rng = np.random.default_rng(cfg.fit.seed)
    epoch_s, metrics = [], {}
    for epoch in range(epochs):
        start = time.perf_counter()
        ctx.epoch = epoch
        model.set_trainable(stage.trainable_parts(cfg, epoch))
        params = [p for p in model.parameters() if p.requires_grad]
        model.train()
        order = rng.permutation(tables["train"].num_rows)
        generator = epoch_generator(cfg.fit.seed, 0, epoch)
        for i in range(steps):
            arrays = decode_batch(tables["train"].take(order[i * batch_size:(i + 1) * batch_size]), info.to_json(),
                                  pipe, train=True, keep_ids=False)
            # The same augmentation as the fit loop applies in each worker.
            batch = augment({k: torch.from_numpy(v) for k, v in arrays.items()}, cfg.data, generator)
            loss = stage.train_step(model, batch, ctx)["loss"]
            loss.backward()
            torch.nn.utils.clip_grad_norm_(params, cfg.fit.grad_clip, foreach=True)
            optimizer.step()
            optimizer.zero_grad(set_to_none=True)
            schedule.step()
        model.eval()
        parts: dict[str, list] = {}
        with torch.no_grad():
            for j in range(0, tables["val"].num_rows, batch_size):
                arrays = decode_batch(tables["val"].slice(j, batch_size), info.to_json(), pipe, train=False,
                                      keep_ids=False)
                out = stage.eval_batch(model, {k: torch.from_numpy(v) for k, v in arrays.items()}, ctx)
                for k, v in out.items():
                    parts.setdefault(k, []).append(v)
        metrics = stage.epoch_metrics({k: np.concatenate(v) for k, v in parts.items()}, model, ctx)
        epoch_s.append(time.perf_counter() - start)
    return {"epoch_s": epoch_s, "f1_macro": float(metrics.get(stage.primary_metric, float("nan")))}


def _timed(cmd: list[str]) -> tuple[float, list[tuple[float, str]]]:
    """Run ``cmd``; returns its wall seconds and its output lines (stdout and stderr
    merged), each with the seconds since the start at which it appeared."""
    start = time.perf_counter()
    proc = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    assert proc.stdout is not None
    lines = [(time.perf_counter() - start, line.rstrip("\n")) for line in proc.stdout]
    proc.wait()
    wall = time.perf_counter() - start
    if proc.returncode != 0:
        raise SystemExit(f"{' '.join(cmd[:4])} failed ({proc.returncode}):\n" + "\n".join(t for _, t in lines[-40:]))
    return wall, lines


# Start-up phases of a train CLI run, each ending at the first output line holding the marker.
PHASES = {"ray_start": "Started a local Ray instance", "train_worker_ready": "torch thread(s) each",
          "first_epoch_done": "epoch 1/"}


def phases(lines: list[tuple[float, str]], wall: float) -> dict[str, float]:
    """Seconds of each start-up phase (see :data:`PHASES`) and of the tail after the last
    epoch line (checkpoint, result, shutdown, exit)."""
    at = {name: next((t for t, line in lines if marker in line), float("nan")) for name, marker in PHASES.items()}
    last_epoch = max((t for t, line in lines if "] epoch " in line), default=float("nan"))
    return {"to_ray_started_s": at["ray_start"],
            "ray_started_to_worker_ready_s": at["train_worker_ready"] - at["ray_start"],
            "worker_ready_to_epoch_1_done_s": at["first_epoch_done"] - at["train_worker_ready"],
            "after_last_epoch_s": wall - last_epoch}


# Ray arms: extra settings of the train CLI. ``ray`` is the CLI as shipped (on a local
# Ray it gives torch the machine's cores); ``ray_1thread`` is Ray's own default, one torch
# thread per reserved CPU.
RAY_ARMS = {"ray": [], "ray_1thread": ["fit.torch_threads=1"]}


def ray_arm(work: Path, args: argparse.Namespace, round_: int, extra: list[str]) -> dict:
    """One run of ``python -m medsight_ray.train``: wall, epochs, start-up and its phases."""
    out = work / f"ray{round_}{'_'.join(extra)}"
    settings = [f"fit.epochs={args.epochs}", f"data.image_size={args.size}", "fit.cpus_per_worker=1", *extra]
    # --verbose: the phases are timed from Ray's own lines, which the console otherwise leaves to the log.
    wall, lines = _timed([sys.executable, "-m", "medsight_ray.train", "--task", "grading", "--data",
                          str(work / "data"), "--out", str(out), "--verbose",
                          *[a for o in settings for a in ("--set", o)]])
    history = json.loads((out / "summary.json").read_text())["runs"][0]["history"]
    epochs = [h["time/epoch_s"] for h in history]
    return {"wall_s": wall, "epochs_s": sum(epochs), "startup_s": wall - sum(epochs),
            "f1_macro": history[-1]["val/f1_macro"], "epoch_s": epochs,
            "torch_threads": history[-1].get("fit/torch_threads"), "phases": phases(lines, wall)}


def plain_arm(work: Path, args: argparse.Namespace) -> dict:
    """One run of this file with ``--plain``, in a fresh process."""
    wall, lines = _timed([sys.executable, __file__, "--plain", str(work / "data"), "--epochs", str(args.epochs),
                          "--size", str(args.size)])
    plain = json.loads(lines[-1][1])
    return {"wall_s": wall, "epochs_s": sum(plain["epoch_s"]), "startup_s": wall - sum(plain["epoch_s"]),
            "f1_macro": plain["f1_macro"], "epoch_s": plain["epoch_s"]}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--rows", type=int, default=1000)
    p.add_argument("--size", type=int, default=64)
    p.add_argument("--epochs", type=int, default=8)
    p.add_argument("--rounds", type=int, default=2)
    p.add_argument("--arms", default="ray,ray_1thread,plain", help="comma-separated subset of ray,ray_1thread,plain")
    p.add_argument("--out", default=str(ROOT / "bench/results/ray_overhead.json"))
    p.add_argument("--plain", help=argparse.SUPPRESS)  # internal: run the plain arm on this dataset
    args = p.parse_args()
    overrides = [f"data.image_size={args.size}"]
    if args.plain:
        print(json.dumps(plain_loop(args.plain, args.epochs, overrides)))
        return

    from medsight_ray.data.synth import synthesize

    work = Path(tempfile.mkdtemp(prefix="medsight_overhead_"))
    synthesize("grading", work / "data", rows=args.rows, image_size=args.size, seed=0)
    runs: dict[str, list[dict]] = {arm: [] for arm in args.arms.split(",")}
    for r in range(args.rounds):
        for arm in runs:
            runs[arm].append(plain_arm(work, args) if arm == "plain" else ray_arm(work, args, r, RAY_ARMS[arm]))
        print(f"round {r + 1}: " + ", ".join(f"{arm} {rs[-1]['wall_s']:.1f} s" for arm, rs in runs.items()),
              flush=True)
    med = {arm: {k: statistics.median(x[k] for x in rs) for k in ("wall_s", "epochs_s", "startup_s", "f1_macro")}
           | {"later_epoch_s": statistics.median(e for x in rs for e in x["epoch_s"][1:])}
           for arm, rs in runs.items()}
    print(f"\n{'arm':<12} {'wall s':>8} {'epochs s':>9} {'startup s':>10} {'epoch 2+ s':>11} {'F1 macro':>9}")
    for arm, m in med.items():
        print(f"{arm:<12} {m['wall_s']:>8.1f} {m['epochs_s']:>9.1f} {m['startup_s']:>10.1f} "
              f"{m['later_epoch_s']:>11.1f} {m['f1_macro']:>9.3f}")
    ratios = {}
    if "plain" in med:
        for arm in (a for a in med if a != "plain"):
            ratios[arm] = {"wall": med[arm]["wall_s"] / med["plain"]["wall_s"],
                           "epochs": med[arm]["epochs_s"] / med["plain"]["epochs_s"]}
            print(f"{arm} / plain wall: {ratios[arm]['wall']:.2f} (target <= 1.25); epochs only: "
                  f"{ratios[arm]['epochs']:.2f}")
    for arm in (a for a in med if a != "plain"):
        med[arm]["phases"] = {k: statistics.median(r["phases"][k] for r in runs[arm]) for k in runs[arm][0]["phases"]}
        print(f"{arm} start-up phases (median s): "
              + ", ".join(f"{k.removesuffix('_s')} {v:.1f}" for k, v in med[arm]["phases"].items()))
    result = {"rows": args.rows, "size": args.size, "epochs": args.epochs, "runs": runs, "median": med,
              "ratios": ratios}
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
