"""Is Ray Data the bottleneck? Training throughput fed from parquet against in-memory tensors,
and peak memory as the dataset grows.

    python bench/input_pipeline.py [--rows 1000] [--size 64] [--rounds 3] [--scale 10]
                                   [--out bench/results/input_pipeline.json]

Throughput: the grading model's train step (resnet10t, batch 32, AdamW, clipping) over
one epoch of the train split, fed (a) by the pipeline the fit loop uses
(``build_datasets``: ``read_parquet`` → ``decode_batch`` with augmentation, streamed by
``iter_torch_batches``) and (b) by the same rows decoded once beforehand and held as
tensors. Arms alternate for ``--rounds`` rounds; samples per second are compared by
their medians. Target: (a) / (b) >= 0.9.

Memory: peak RSS of this process and every Ray process it started (sampled every
0.1 s) while arm (a) streams one epoch of a dataset of ``--rows`` and of
``--scale`` × ``--rows`` rows. Target: peak at 10× <= 1.2 × peak at 1×.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import statistics
import tempfile
import threading
import time
from pathlib import Path

import psutil
import torch
from grading_step import grading_step  # bench/, on sys.path when run as a script

from medsight_ray.config import to_dict
from medsight_ray.data.pipeline import build_datasets, decode_batch
from medsight_ray.data.store import list_dataset, read_info
from medsight_ray.data.synth import synthesize
from medsight_ray.raylocal import init_ray

ROOT = Path(__file__).resolve().parents[1]
BATCH = 32


class PeakRss:
    """Peak summed RSS of this process and its descendants (the local Ray processes)."""

    def __init__(self) -> None:
        self.peak = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _sample(self) -> int:
        me = psutil.Process()
        total = 0
        for proc in [me, *me.children(recursive=True)]:
            with contextlib.suppress(psutil.Error):  # a process may exit between listing and reading
                total += proc.memory_info().rss
        return total

    def _run(self) -> None:
        while not self._stop.is_set():
            self.peak = max(self.peak, self._sample())
            time.sleep(0.1)

    def __enter__(self) -> PeakRss:
        self.peak = self._sample()
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


def _trainer(data: str, size: int):
    info = read_info(list_dataset(data))
    torch.manual_seed(0)
    stage, cfg, model, params, opt, ctx = grading_step(size, info)

    def step(batch: dict[str, torch.Tensor]) -> None:
        loss = stage.train_step(model, batch, ctx)["loss"]
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0, foreach=True)
        opt.step()
        opt.zero_grad(set_to_none=True)

    return cfg, info, step


def ray_data_epoch(data: str, cfg, step) -> tuple[int, float]:
    """(samples, seconds) of one streamed epoch."""
    _, datasets = build_datasets(data, cfg.data, splits=("train",))
    start, n = time.perf_counter(), 0
    for batch in datasets["train"].iter_torch_batches(batch_size=BATCH, local_shuffle_buffer_size=256,
                                                      drop_last=True):
        step({k: v for k, v in batch.items() if isinstance(v, torch.Tensor)})
        n += len(batch["label"])
    return n, time.perf_counter() - start


def in_memory(data: str, cfg, info) -> list[dict[str, torch.Tensor]]:
    import pyarrow as pa
    import pyarrow.parquet as pq

    files = list_dataset(data)
    table = pa.concat_tables([pq.read_table(p) for p in files.by_split["train"]])
    arrays = decode_batch(table, info.to_json(), to_dict(cfg.data), train=True, keep_ids=False)
    tensors = {k: torch.from_numpy(v) for k, v in arrays.items()}
    rows = len(tensors["label"])
    return [{k: v[i:i + BATCH] for k, v in tensors.items()} for i in range(0, rows - BATCH + 1, BATCH)]


def memory_epoch(batches: list[dict[str, torch.Tensor]], step) -> tuple[int, float]:
    start, n = time.perf_counter(), 0
    for batch in batches:
        step(batch)
        n += len(batch["label"])
    return n, time.perf_counter() - start


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--rows", type=int, default=1000)
    p.add_argument("--size", type=int, default=64)
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--scale", type=int, default=10)
    p.add_argument("--out", default=str(ROOT / "bench/results/input_pipeline.json"))
    args = p.parse_args()
    work = Path(tempfile.mkdtemp(prefix="medsight_input_"))
    small, large = str(work / "x1"), str(work / f"x{args.scale}")
    synthesize("grading", small, rows=args.rows, image_size=args.size, seed=0)
    init_ray(num_cpus=4)
    cfg, info, step = _trainer(small, args.size)
    batches = in_memory(small, cfg, info)
    ray_data_epoch(small, cfg, step)  # warm-up: worker start, imports, first plan
    rates: dict[str, list[float]] = {"ray_data": [], "in_memory": []}
    for r in range(args.rounds):
        n, s = ray_data_epoch(small, cfg, step)
        rates["ray_data"].append(n / s)
        n, s = memory_epoch(batches, step)
        rates["in_memory"].append(n / s)
        print(f"round {r + 1}: ray_data {rates['ray_data'][-1]:.1f}/s, in-memory {rates['in_memory'][-1]:.1f}/s",
              flush=True)
    del batches
    synthesize("grading", large, rows=args.rows * args.scale, image_size=args.size, seed=1)
    peaks = {}
    for name, data in (("x1", small), (f"x{args.scale}", large)):
        with PeakRss() as rss:
            ray_data_epoch(data, cfg, step)
        peaks[name] = rss.peak / 2**20
    med = {k: statistics.median(v) for k, v in rates.items()}
    ratio = med["ray_data"] / med["in_memory"]
    growth = peaks[f"x{args.scale}"] / peaks["x1"]
    print(f"\n{'feed':<10} {'samples/s (median)':>19}")
    for k, v in med.items():
        print(f"{k:<10} {v:>19.1f}")
    print(f"ray_data / in_memory: {ratio:.3f} (target >= 0.9)")
    print(f"peak RSS streaming {args.rows} rows: {peaks['x1']:.0f} MiB; {args.rows * args.scale} rows: "
          f"{peaks[f'x{args.scale}']:.0f} MiB; growth {growth:.2f}x (target <= 1.2)")
    result = {"rows": args.rows, "size": args.size, "batch": BATCH, "rates": rates, "median": med, "ratio": ratio,
              "peak_rss_mib": peaks, "rss_growth": growth}
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
