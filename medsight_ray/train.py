"""``python -m medsight_ray.train``: train one stage, or a task's whole pipeline, on Ray Train.

    python -m medsight_ray.train --task grading --data DIR --out DIR [--workers N]
    python -m medsight_ray.train --task concepts --stage prototypes --init CKPT --data DIR --out DIR
    python -m medsight_ray.train --task concepts --pipeline --data DIR --out DIR --set fit.epochs=4

``--config FILE`` is a YAML of the stage config (for ``--pipeline``: one section per
stage name). ``--set key=value`` overrides any key; in a pipeline ``stage.key=value``
targets one stage and a plain key every stage. Unknown keys are rejected with the
valid ones. Writes ``OUT/summary.json`` and copies the final model to
``OUT/final_model.pt``. Exit codes: 0 done, 1 a stage failed or was stopped by the
health monitor, 2 bad input.
"""

from __future__ import annotations

import argparse
import json
import shutil
import time
from pathlib import Path
from typing import Any

from medsight_ray.config import apply_overrides, flatten, load_yaml
from medsight_ray.errors import ConfigError, exit_code, exit_on_error
from medsight_ray.fit.stage import Stage
from medsight_ray.raylocal import set_local_env
from medsight_ray.stages.registry import get_stage, pipeline


def build_parser() -> argparse.ArgumentParser:
    """The argument parser, exposed for tests and docs."""
    p = argparse.ArgumentParser(prog="python -m medsight_ray.train", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--task", required=True, help="concepts, grading or segmentation")
    which = p.add_mutually_exclusive_group()
    which.add_argument("--stage", help="stage name (default: the task's only stage)")
    which.add_argument("--pipeline", action="store_true", help="train every stage of the task in order")
    p.add_argument("--data", required=True, help="dataset directory or URI")
    p.add_argument("--out", required=True, help="output directory")
    p.add_argument("--storage", help="Ray storage for checkpoints (path or URI; default OUT/ray)")
    p.add_argument("--workers", type=int, help="shorthand for --set fit.workers=N")
    p.add_argument("--config", help="YAML config file")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", dest="overrides")
    p.add_argument("--init", help="checkpoint of the previous stage (model.pt or its directory)")
    p.add_argument("--address", help="Ray address (default: RAY_ADDRESS, else local Ray on 127.0.0.1)")
    p.add_argument("--skip-check", action="store_true", help="skip the full dataset check (not recommended)")
    return p


def _split_overrides(stages: list[Stage], overrides: list[str]) -> dict[str, list[str]]:
    names = {s.name for s in stages}
    out: dict[str, list[str]] = {s.name: [] for s in stages}
    for item in overrides:
        head, _, rest = item.partition(".")
        if head in names and len(stages) > 1:
            out[head].append(rest)
        else:
            for s in stages:
                out[s.name].append(item)
    return out


def stage_configs(stages: list[Stage], config_file: str | None, overrides: list[str],
                  workers: int | None = None) -> dict[str, Any]:
    """Each stage's config: defaults ← YAML ← ``--workers`` ← ``--set``."""
    data = load_yaml(config_file) if config_file else {}
    if len(stages) > 1 and data:
        unknown = sorted(set(data) - {s.name for s in stages})
        if unknown:
            raise ConfigError("unknown section in pipeline config", where=f"{config_file}: {unknown[0]}",
                              expected=f"sections {[s.name for s in stages]}", got=str(unknown))
    per_stage = _split_overrides(stages, overrides)
    configs = {}
    for s in stages:
        section = data.get(s.name, {}) if len(stages) > 1 else data
        cfg = apply_overrides(s.config_cls(), flatten(section))
        if workers is not None:
            cfg = apply_overrides(cfg, {"fit.workers": workers})
        configs[s.name] = apply_overrides(cfg, per_stage[s.name])
    return configs


def cross_validate(stage: Stage, cfg: Any, data: Any, storage: str, stamp: str, folds: int) -> dict[str, Any]:
    """k-fold cross-validation by patient over the train and val files.

    Returns the primary metric per fold, its mean and standard deviation, and each
    fold's summary. The final model is still trained on the fixed train split.
    """
    import statistics

    from medsight_ray.fit.runner import run_stage

    key = f"val/{stage.primary_metric}"
    runs = []
    for index in range(folds):
        print(f"== {stage.task}/{stage.name}: fold {index + 1}/{folds}", flush=True)
        runs.append(run_stage(stage, cfg, data, storage, f"{stage.task}-{stage.name}-{stamp}-fold{index}",
                              fold=(index, folds, cfg.fit.seed)))
    values = [float(r.best.get(key, float("nan"))) for r in runs]
    report = {"metric": key, "folds": values, "mean": statistics.fmean(values),
              "std": statistics.pstdev(values), "runs": [r.summary() for r in runs]}
    print(f"== cross-validation {key}: {report['mean']:.4f} ± {report['std']:.4f} over {folds} folds", flush=True)
    return report


def run(args: argparse.Namespace) -> dict[str, Any]:
    """Train as ``args`` say; returns the summary written to ``OUT/summary.json``."""
    from medsight_ray.fit.runner import prepare_data, run_stage, storage_path
    from medsight_ray.raylocal import init_ray, local_machine_overrides

    stages = pipeline(args.task) if args.pipeline else [get_stage(args.task, args.stage)]
    configs = stage_configs(stages, args.config, args.overrides, args.workers)
    if args.init and args.pipeline:
        raise ConfigError("--init names the checkpoint of a single stage", where="--init",
                          expected="--stage S --init CKPT", got="--pipeline --init")
    out = Path(args.out)
    storage_path(str(out))
    storage = args.storage or str((out / "ray").resolve())
    storage_path(storage)  # a named error now, not after the first epoch
    data = prepare_data(args.data, args.task, check=not args.skip_check)
    for stage in stages:
        # A bad backbone name, feature index or pretrained file fails here, before Ray starts.
        stage.build_model(configs[stage.name], data.info)
    if init_ray(args.address):
        # Alone on a machine it started: use the cores Ray's defaults would leave idle.
        configs = {name: apply_overrides(cfg, local_machine_overrides(cfg)) for name, cfg in configs.items()}
    summary: dict[str, Any] = {"task": args.task, "data": args.data, "fingerprint": data.fingerprint, "runs": []}
    previous = args.init
    # A run name that exists in storage makes Ray Train resume it, so each invocation
    # gets its own.
    stamp = time.strftime("%Y%m%d-%H%M%S")
    for stage in stages:
        folds = int(getattr(configs[stage.name], "kfold", 0))
        if folds > 1:
            summary["cross_validation"] = cross_validate(stage, configs[stage.name], data, storage, stamp, folds)
        print(f"== {stage.task}/{stage.name}: training", flush=True)
        result = run_stage(stage, configs[stage.name], data, storage, f"{stage.task}-{stage.name}-{stamp}",
                           previous)
        summary["runs"].append(result.summary())
        print(f"== {stage.task}/{stage.name}: {result.status} after {result.epochs_run} epochs; best "
              + ", ".join(f"{k} {v:.4g}" for k, v in result.best.items() if k.startswith("val/")
                          and isinstance(v, float) and k.count("/") == 1)[:400], flush=True)
        if result.status == "errored" or result.checkpoint is None:
            summary["failed"] = f"{stage.name}: {result.error or 'no checkpoint'}"
            break
        if result.diagnoses and any(d.get("severity") == "fatal" for d in result.diagnoses):
            summary["failed"] = f"{stage.name}: stopped by the health monitor"
            break
        previous = result.checkpoint
    final = summary["runs"][-1]["checkpoint"] if summary["runs"] and "failed" not in summary else None
    if final and "://" not in final:
        shutil.copy(Path(final) / "model.pt", out / "final_model.pt")
        summary["final_model"] = str((out / "final_model.pt").resolve())
    (out / "summary.json").write_text(json.dumps(summary, indent=2, default=str))
    return summary


def main(argv: list[str] | None = None) -> int:
    """Entry point; returns the exit code."""
    # Before anything imports ray: local Ray then binds every listener to 127.0.0.1.
    set_local_env()
    return exit_code(run(build_parser().parse_args(argv)))


cli = exit_on_error(main)

if __name__ == "__main__":
    cli()
