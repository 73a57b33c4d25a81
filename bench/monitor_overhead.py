"""What does health monitoring cost per optimiser step?

    python bench/monitor_overhead.py [--steps 60] [--rounds 5] [--out bench/results/monitor_overhead.json]

Runs the fit loop's step (the grading stage's train_step, backward, clipping with
foreach norms, optimiser step) on the same model and batches, alternating rounds with
the monitor on and off, and reports the median step time of each and their ratio.
The monitor reads the gradient norm that clipping computes anyway, so its cost is the
rule evaluation itself plus the Ray metrics exporter's gauge update (every 5th step).
Target: <= 1 % overhead.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path

import torch
from grading_step import grading_step  # bench/, on sys.path when run as a script

from medsight_ray.health.export import HealthExporter
from medsight_ray.health.monitor import HealthMonitor
from medsight_ray.raylocal import init_ray


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--steps", type=int, default=60)
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument("--out", default=str(Path(__file__).parent / "results/monitor_overhead.json"))
    args = p.parse_args()
    torch.manual_seed(0)
    init_ray(num_cpus=1)  # so that the metrics exporter records into a real Ray metrics agent
    exporter = HealthExporter("grading/grading", "bench", "f1_macro")
    stage, cfg, model, params, opt, ctx = grading_step(64)
    batches = [{"image": torch.randn(32, 3, 64, 64), "label": torch.randint(0, 4, (32,))} for _ in range(4)]

    def run(monitor: HealthMonitor | None) -> float:
        times = []
        for i in range(args.steps):
            start = time.perf_counter()
            loss = stage.train_step(model, batches[i % 4], ctx)["loss"]
            loss.backward()
            norm = torch.nn.utils.clip_grad_norm_(params, 1.0, foreach=True)
            value = float(loss.detach())  # the loop reads it for its epoch mean either way
            if monitor is not None:
                monitor.on_step(value, float(norm))
                exporter.on_step(float(norm))
            opt.step()
            opt.zero_grad(set_to_none=True)
            times.append(time.perf_counter() - start)
        return statistics.median(times[5:])

    run(None)  # warm-up
    on, off = [], []
    for _ in range(args.rounds):
        off.append(run(None))
        on.append(run(HealthMonitor(cfg.health, "grading/grading", "f1_macro")))
    result = {"step_ms_off": 1000 * statistics.median(off), "step_ms_on": 1000 * statistics.median(on)}
    result["overhead"] = result["step_ms_on"] / result["step_ms_off"] - 1
    monitor = HealthMonitor(cfg.health, "grading/grading", "f1_macro")
    calls = 10000
    start = time.perf_counter()
    for _ in range(calls):  # the mean covers the exporter's every-5th-step gauge update
        monitor.on_step(0.5, 1.0)
        exporter.on_step(1.0)
    result["on_step_us"] = 1e6 * (time.perf_counter() - start) / calls
    result["overhead_from_call"] = result["on_step_us"] / 1000 / result["step_ms_off"]
    print(f"{'step off (ms)':>14} {'step on (ms)':>13} {'overhead':>9} {'on_step (us)':>13} {'call/step':>10}")
    print(f"{result['step_ms_off']:>14.2f} {result['step_ms_on']:>13.2f} {100 * result['overhead']:>8.2f}% "
          f"{result['on_step_us']:>13.2f} {100 * result['overhead_from_call']:>9.4f}%")
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
