"""Is Ray Data the bottleneck? Training throughput fed from parquet against in-memory tensors,
and peak memory as the dataset grows.

    python bench/input_pipeline.py [--rows 1000] [--size 64] [--source-size 64] [--rounds 3] [--scale 10]
                                   [--decode-tasks N] [--threads N] [--skip-memory]
                                   [--out bench/results/input_pipeline.json]

Throughput: the grading model's train step (resnet10t, batch 32, AdamW, clipping) over
one epoch of the train split, fed (a) by the pipeline the fit loop uses
(``build_datasets``: ``read_parquet`` → ``decode_batch``, streamed by
``iter_torch_batches``), (b) by the same rows decoded once beforehand and held as
tensors, and (c) by the same parquet rows decoded batch by batch inside the loop
without Ray (the seeds' style: a ``Dataset.__getitem__`` with ``num_workers=0``). Every
arm's step augments the batch, as the fit loop's workers do. Arms alternate for
``--rounds`` rounds; samples per second are compared by their medians.
Target: (a) / (b) >= 0.9; (a) / (c) says whether Ray Data adds cost or overlap. Arm
(d) streams the decoded mirror a sweep writes once before its first trial
(:mod:`medsight_ray.data.decoded`) through the same pipeline; target (d) / (b) >= 0.95.

``--source-size`` is the side of the stored images (PNG), resized to ``--size`` on
decode: stored images larger than the training size are the common case (scans kept at
full resolution), and there the decode is most of the pipeline's work.

Memory: peak memory of this process and every Ray process it started while arm (a)
streams one epoch of a dataset of ``--rows`` and of ``--scale`` × ``--rows`` rows, as
summed RSS (counts the object store's shared pages once per process that maps them)
and as summed PSS (shared pages divided among the processes that map them: what the
machine actually holds), for arms (a) and (d). Target: peak at 10× <= 1.2 × peak at 1×.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import statistics
import tempfile
import threading
import time
from dataclasses import replace
from functools import partial
from pathlib import Path

import numpy as np
import psutil
import torch
from grading_step import grading_step  # bench/, on sys.path when run as a script

from medsight_ray.config import to_dict
from medsight_ray.data.augment import augment, epoch_generator
from medsight_ray.data.decoded import ensure_decoded
from medsight_ray.data.pipeline import build_datasets, decode_batch
from medsight_ray.data.stats import fingerprint
from medsight_ray.data.store import list_dataset, read_info
from medsight_ray.data.synth import synthesize
from medsight_ray.raylocal import init_ray, local_machine_overrides

ROOT = Path(__file__).resolve().parents[1]
BATCH = 32


class PeakMemory:
    """Peak summed RSS and summed PSS of this process and its descendants (the local Ray
    processes), in bytes, sampled every 0.25 s, and the most processes seen at once."""

    def __init__(self) -> None:
        self.rss = self.pss = self.processes = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _sample(self) -> None:
        me = psutil.Process()
        rss = pss = 0
        procs = [me, *me.children(recursive=True)]
        self.processes = max(self.processes, len(procs))
        for proc in procs:
            with contextlib.suppress(psutil.Error):  # a process may exit between listing and reading
                info = proc.memory_full_info()
                rss += info.rss
                pss += info.pss
        self.rss, self.pss = max(self.rss, rss), max(self.pss, pss)

    def _run(self) -> None:
        while not self._stop.is_set():
            self._sample()
            time.sleep(0.25)

    def __enter__(self) -> PeakMemory:
        self._sample()
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


def _trainer(data: str, size: int):
    info = read_info(list_dataset(data))
    torch.manual_seed(0)
    stage, cfg, model, params, opt, ctx = grading_step(size, info)

    generator = epoch_generator(0, 0, 0)

    def step(batch: dict[str, torch.Tensor]) -> None:
        # Every arm augments in the step, as the fit loop does in its workers.
        loss = stage.train_step(model, augment(batch, cfg.data, generator), ctx)["loss"]
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0, foreach=True)
        opt.step()
        opt.zero_grad(set_to_none=True)

    return cfg, info, step


def ray_data_epoch(data: str, cfg, step, decoded: str | None = None) -> tuple[int, float]:
    """(samples, seconds) of one streamed epoch (from the decoded mirror ``decoded``, if given)."""
    _, datasets = build_datasets(data, cfg.data, splits=("train",), decoded=decoded)
    start, n = time.perf_counter(), 0
    for batch in datasets["train"].iter_torch_batches(batch_size=BATCH, local_shuffle_buffer_size=256,
                                                      drop_last=True):
        step({k: v for k, v in batch.items() if isinstance(v, torch.Tensor)})
        n += len(batch["label"])
    return n, time.perf_counter() - start


def train_table(data: str):
    """The train split's parquet rows, read once (still PNG bytes)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    return pa.concat_tables([pq.read_table(p) for p in list_dataset(data).by_split["train"]])


def in_memory(data: str, cfg, info) -> list[dict[str, torch.Tensor]]:
    arrays = decode_batch(train_table(data), info.to_json(), to_dict(cfg.data), train=True, keep_ids=False)
    tensors = {k: torch.from_numpy(v) for k, v in arrays.items()}
    rows = len(tensors["label"])
    return [{k: v[i:i + BATCH] for k, v in tensors.items()} for i in range(0, rows - BATCH + 1, BATCH)]


def memory_epoch(batches: list[dict[str, torch.Tensor]], step) -> tuple[int, float]:
    start, n = time.perf_counter(), 0
    for batch in batches:
        step(batch)
        n += len(batch["label"])
    return n, time.perf_counter() - start


def mirror(data: str, size: int, root: Path) -> tuple[str, float]:
    """The decoded mirror of ``data`` (as a sweep writes it before its first trial), and
    the seconds it took."""
    start = time.perf_counter()
    uri = ensure_decoded(data, fingerprint(list_dataset(data)), size, str(root))
    return uri, time.perf_counter() - start


def decode_in_loop_epoch(table, cfg, info, step, rng) -> tuple[int, float]:
    """(samples, seconds) of one epoch decoding each shuffled batch just before its step."""
    start, n = time.perf_counter(), 0
    order = rng.permutation(table.num_rows)
    pipe, info_json = to_dict(cfg.data), info.to_json()
    for i in range(0, table.num_rows - BATCH + 1, BATCH):
        arrays = decode_batch(table.take(order[i:i + BATCH]), info_json, pipe, train=True, keep_ids=False)
        step({k: torch.from_numpy(v) for k, v in arrays.items()})
        n += BATCH
    return n, time.perf_counter() - start


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--rows", type=int, default=1000)
    p.add_argument("--size", type=int, default=64)
    p.add_argument("--source-size", type=int, help="side of the stored PNGs (default: --size)")
    p.add_argument("--threads", type=int, help="torch threads of the train step (default: torch's, the cores)")
    p.add_argument("--skip-memory", action="store_true", help="measure throughput only")
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--scale", type=int, default=10)
    p.add_argument("--decode-tasks", type=int, help="data.decode_tasks (default: the machine's cores, as the CLIs "
                                                     "set on a local Ray; 0 = Ray Data's default)")
    p.add_argument("--out", default=str(ROOT / "bench/results/input_pipeline.json"))
    args = p.parse_args()
    work = Path(tempfile.mkdtemp(prefix="medsight_input_"))
    small, large = str(work / "x1"), str(work / f"x{args.scale}")
    source = args.source_size or args.size
    if args.threads:
        torch.set_num_threads(args.threads)
    synthesize("grading", small, rows=args.rows, image_size=source, seed=0)
    init_ray(num_cpus=4)
    cfg, info, step = _trainer(small, args.size)
    # As the CLIs do on a local Ray they start, unless --decode-tasks says otherwise.
    tasks = args.decode_tasks if args.decode_tasks is not None else local_machine_overrides(cfg)["data.decode_tasks"]
    cfg = replace(cfg, data=replace(cfg.data, decode_tasks=tasks))
    batches = in_memory(small, cfg, info)
    table, rng = train_table(small), np.random.default_rng(0)
    small_mirror, mirror_s = mirror(small, args.size, work / "decoded")
    ray_data_epoch(small, cfg, step)  # warm-up: worker start, imports, first plan
    arms = {"ray_data": partial(ray_data_epoch, small, cfg, step),
            "decoded_once": partial(ray_data_epoch, small, cfg, step, small_mirror),
            "in_memory": partial(memory_epoch, batches, step),
            "decode_in_loop": partial(decode_in_loop_epoch, table, cfg, info, step, rng)}
    rates: dict[str, list[float]] = {k: [] for k in arms}
    for r in range(args.rounds):
        for name, epoch in arms.items():
            n, s = epoch()
            rates[name].append(n / s)
        print(f"round {r + 1}: " + ", ".join(f"{k} {v[-1]:.1f}/s" for k, v in rates.items()), flush=True)
    del arms, batches, table
    large_mirror_s = float("nan")
    # feed -> "rss" / "pss" / "processes" -> "x1" / "x10"
    peaks: dict[str, dict[str, dict[str, float]]] = {}
    if not args.skip_memory:
        synthesize("grading", large, rows=args.rows * args.scale, image_size=source, seed=1)
        large_mirror, large_mirror_s = mirror(large, args.size, work / "decoded")
        scales = (("x1", small, small_mirror), (f"x{args.scale}", large, large_mirror))
    # Scale by scale, the mirror first: an epoch of large PNG files leaves large heaps in
    # Ray's idle workers, which a feed measured after it would be charged for.
    for name, data, decoded in scales if not args.skip_memory else ():
        for feed in ("decoded_once", "ray_data"):
            with PeakMemory() as memory:
                ray_data_epoch(data, cfg, step, decoded if feed == "decoded_once" else None)
            got = peaks.setdefault(feed, {"rss": {}, "pss": {}, "processes": {}})
            got["rss"][name], got["pss"][name] = memory.rss / 2**20, memory.pss / 2**20
            got["processes"][name] = memory.processes
    med = {k: statistics.median(v) for k, v in rates.items()}
    ratio = {k: med[k] / med["in_memory"] for k in ("ray_data", "decoded_once")}
    growth = {feed: {k: v[f"x{args.scale}"] / v["x1"] for k, v in p.items() if k != "processes"}
              for feed, p in peaks.items()}
    print(f"decode tasks {tasks}; decoding once took {mirror_s:.1f} s ({args.rows} rows), "
          f"{large_mirror_s:.1f} s ({args.rows * args.scale} rows)")
    print(f"\n{'feed':<15} {'samples/s (median)':>19} {'/ in_memory':>12}")
    for k, v in med.items():
        print(f"{k:<15} {v:>19.1f} {v / med['in_memory']:>12.3f}")
    print(f"ray_data / in_memory: {ratio['ray_data']:.3f} (target >= 0.9); decoded_once / in_memory: "
          f"{ratio['decoded_once']:.3f} (target >= 0.95); ray_data / decode_in_loop: "
          f"{med['ray_data'] / med['decode_in_loop']:.3f}")
    for feed, p in peaks.items():
        for kind in ("rss", "pss"):
            values = p[kind]
            print(f"{feed}: peak {kind.upper()} streaming {args.rows} rows: {values['x1']:.0f} MiB "
                  f"({p['processes']['x1']} processes); {args.rows * args.scale} rows: "
                  f"{values[f'x{args.scale}']:.0f} MiB ({p['processes'][f'x{args.scale}']}); "
                  f"growth {growth[feed][kind]:.2f}x (target <= 1.2)")
    result = {"rows": args.rows, "size": args.size, "source_size": source, "threads": torch.get_num_threads(),
              "batch": BATCH, "decode_tasks": tasks, "rates": rates,
              "median": med, "ratio": ratio,
              "ratio_vs_decode_in_loop": med["ray_data"] / med["decode_in_loop"], "peak_mib": peaks,
              "growth": growth, "decode_once_seconds": {"x1": mirror_s, f"x{args.scale}": large_mirror_s}}
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
