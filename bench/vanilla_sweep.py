"""The sweep a user would write without medsight_ray: the baseline of time to target.

    python bench/vanilla_sweep.py --space tune_spaces/concepts.yaml --data DIR --out DIR
                                  [--samples N] [--seed S] [--set KEY=VALUE ...]

``Tuner`` + ``OptunaSearch`` + ``ASHAScheduler`` over a function trainable, with a plain
PyTorch loop and a ``DataLoader`` over the same parquet rows. What stays the same as
``python -m medsight_ray.tune``, so that only the product differs:

- the search space, its first points (the seeds' settings) and the trial budget;
- the model, the loss, the optimiser and its schedule, the augmentation, the class-aware
  sampler and the metrics (the stage's own code: a user writes these either way);
- the rows and their decoding (``decode_batch`` on one row, in the loop's process);
- ASHA's settings (on ``training_iteration`` = epochs, the same grace and reduction).

What a user would write differently from the product, and is written so here:

- no health monitor and no remedies: a broken trial runs until ASHA cuts it, or until it
  raises (a NaN loss reaching scikit-learn's AUC errors the trial);
- Tune's defaults for resources: one CPU per trial, trials as many as CPUs at once;
- no checkpoints (favouring this baseline: it writes nothing per epoch).

Each report carries ``timestamp`` (Tune's), so a bench reads when a trial met a target
from ``OUT/<name>/*/result.json``.
"""

from __future__ import annotations

import argparse
import math
from dataclasses import asdict
from pathlib import Path
from typing import Any


class ParquetRows:
    """A map-style torch dataset over one split's parquet rows, decoded on access.

    ``row i`` → the stage's arrays of one image (``image``: [C, H, W] float32, normalised;
    and ``label`` / ``concepts``, ``targets``, ``boxes`` / ``mask``), exactly as the
    product's pipeline decodes them.
    """

    def __init__(self, paths: list[str], filesystem: Any, info: Any, pipeline: Any, train: bool) -> None:
        import pyarrow.parquet as pq

        self.table = pq.ParquetDataset(paths, filesystem=filesystem).read()
        self.info_json = info.to_json()
        self.pipeline = asdict(pipeline)
        self.train = train

    def __len__(self) -> int:
        return self.table.num_rows

    def labels(self) -> list[int]:
        return self.table.column("label").to_pylist()

    def __getitem__(self, i: int) -> dict[str, Any]:
        from medsight_ray.data.pipeline import decode_batch

        arrays = decode_batch(self.table.slice(i, 1), self.info_json, self.pipeline, self.train, keep_ids=False)
        return {k: v[0] for k, v in arrays.items()}


def vanilla_trial(config: dict[str, Any], static: dict[str, Any]) -> None:
    """The function trainable: one stage trained by a plain PyTorch loop."""
    import numpy as np
    import ray.tune
    import torch
    from torch.utils.data import DataLoader, WeightedRandomSampler

    from medsight_ray.config import apply_overrides, from_dict
    from medsight_ray.data.augment import augment
    from medsight_ray.data.stats import label_stats
    from medsight_ray.data.store import list_dataset, read_info
    from medsight_ray.fit.optim import Schedule, build_optimizer
    from medsight_ray.fit.stage import Context
    from medsight_ray.stages.registry import get_stage

    stage = get_stage(static["task"], static["stage"])
    cfg = apply_overrides(from_dict(stage.config_cls, static["base_config"]), dict(config))
    torch.manual_seed(cfg.fit.seed)
    files = list_dataset(static["data"])
    info = read_info(files)
    stats = label_stats(files, info)
    train = ParquetRows(files.by_split["train"], files.filesystem, info, cfg.data, train=True)
    val = ParquetRows(files.by_split["val"], files.filesystem, info, cfg.data, train=False)
    rates = stage.resample_rates(cfg, stats)
    sampler = None
    if rates is not None:  # class-aware sampling, the torch way
        weights = np.asarray(rates)[np.asarray(train.labels())]
        sampler = WeightedRandomSampler(weights.tolist(), num_samples=round(float(weights.sum())),
                                        generator=torch.Generator().manual_seed(cfg.fit.seed))
    loader = DataLoader(train, batch_size=cfg.fit.batch_size, shuffle=sampler is None, sampler=sampler,
                        drop_last=len(train) >= cfg.fit.batch_size,
                        generator=torch.Generator().manual_seed(cfg.fit.seed))
    model = stage.build_model(cfg, info)
    model.set_trainable(stage.trainable_parts(cfg, 0))
    optimizer = build_optimizer(stage.param_groups(model, cfg), cfg.optim)
    schedule = Schedule(optimizer, cfg.optim, max(len(loader), 1) * cfg.fit.epochs)
    ctx = Context(cfg, info, stats, torch.device("cpu"), model)
    stage.prepare(ctx)
    generator = torch.Generator().manual_seed(cfg.fit.seed)
    for epoch in range(cfg.fit.epochs):
        ctx.epoch = epoch
        model.set_trainable(stage.trainable_parts(cfg, epoch))
        model.train()
        for batch in loader:
            out = stage.train_step(model, augment(batch, cfg.data, generator), ctx)
            optimizer.zero_grad(set_to_none=True)
            out["loss"].backward()
            if cfg.fit.grad_clip > 0:
                torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.fit.grad_clip)
            optimizer.step()
            schedule.step()
        model.eval()
        parts: dict[str, list[np.ndarray]] = {}
        with torch.no_grad():
            for batch in DataLoader(val, batch_size=cfg.fit.batch_size):
                for k, v in stage.eval_batch(model, batch, ctx).items():
                    parts.setdefault(k, []).append(v)
        metrics = stage.epoch_metrics({k: np.concatenate(v) for k, v in parts.items()}, model, ctx)
        ray.tune.report({f"val/{k}": float(v) for k, v in metrics.items()
                         if isinstance(v, (int, float)) and math.isfinite(float(v))} | {"epoch": epoch + 1})


def run(space_file: str, data: str, out: str, samples: int, seed: int, overrides: list[str]) -> None:
    """The vanilla sweep of one stage's space: its results land in ``out/<task>-<stage>``."""
    import ray
    from ray import tune
    from ray.tune.schedulers import ASHAScheduler
    from ray.tune.search.optuna import OptunaSearch

    from medsight_ray.config import apply_overrides, to_dict
    from medsight_ray.raylocal import init_ray
    from medsight_ray.tune.space import load_space
    from medsight_ray.tune.sweep import ASHA_GRACE_EPOCHS

    space = load_space(space_file)
    stage = space.stage
    base = apply_overrides(apply_overrides(stage.config_cls(), space.fixed), overrides + [f"fit.seed={seed}"])
    init_ray()  # the same local Ray settings as the product's (loopback, no dashboard port clash)
    metric = f"val/{stage.primary_metric}"
    tuner = tune.Tuner(
        tune.with_parameters(vanilla_trial, static={"task": stage.task, "stage": stage.name,
                                                    "base_config": to_dict(base), "data": data}),
        param_space=space.param_space(),
        tune_config=tune.TuneConfig(
            metric=metric, mode="max", num_samples=samples,
            search_alg=OptunaSearch(seed=seed, points_to_evaluate=[dict(p) for p in space.points] or None),
            scheduler=ASHAScheduler(time_attr="training_iteration", max_t=base.fit.epochs,
                                    grace_period=min(ASHA_GRACE_EPOCHS, base.fit.epochs), reduction_factor=2)),
        run_config=tune.RunConfig(name=f"{stage.task}-{stage.name}", storage_path=str(Path(out).resolve()),
                                  verbose=0),
    )
    grid = tuner.fit()
    best = [r.metrics.get(metric) for r in grid if r.metrics and metric in r.metrics]
    print(f"{len(grid)} trials, {sum(1 for r in grid if r.error)} errored, best {metric} "
          f"{max(best) if best else float('nan'):.4f}", flush=True)
    ray.shutdown()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--space", required=True)
    parser.add_argument("--data", required=True)
    parser.add_argument("--out", required=True)
    parser.add_argument("--samples", type=int, default=4)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--set", dest="overrides", action="append", default=[])
    args = parser.parse_args()
    run(args.space, args.data, args.out, args.samples, args.seed, args.overrides)


if __name__ == "__main__":
    main()
