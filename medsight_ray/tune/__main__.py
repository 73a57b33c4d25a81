"""``python -m medsight_ray.tune``: Ray Tune + Optuna over YAML search spaces.

    python -m medsight_ray.tune                                  # the demo (see below)
    python -m medsight_ray.tune --space tune_spaces/grading.yaml --data DIR [--out DIR]
    python -m medsight_ray.tune --pipeline concepts --data DIR   # stage 1, then 2, then 3
    python -m medsight_ray.tune --resume DIR                     # finish an interrupted sweep

On a cluster: ``ray job submit --working-dir . -- python -m medsight_ray.tune ...``.

With no arguments it runs a small demo on local Ray: a synthetic chest X-ray concepts
dataset is written to a cache directory, and the 3-stage pipeline is tuned with the
seeds' original settings among the first points. Each stage's best healthy trial's
checkpoint starts the next stage's trials. ``OUT/summary.json`` lists every trial.
Exit codes: 0 done, 1 a stage had no usable trial, 2 bad input.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

from medsight_ray.errors import ConfigError, MedsightError, exit_code, exit_on_error
from medsight_ray.raylocal import set_local_env

DEMO_ROWS, DEMO_SIZE = 600, 48
#: The demo's budget per stage: trials and epochs (the spaces' first points come first).
DEMO_PLAN = {"concepts": (4, 6), "prototypes": (3, 3), "diagnosis": (2, 8)}


def spaces_dir() -> Path:
    """``tune_spaces/`` of the working directory, else of the source checkout."""
    for base in (Path.cwd(), Path(__file__).resolve().parents[2]):
        if (base / "tune_spaces").is_dir():
            return base / "tune_spaces"
    raise ConfigError("no tune_spaces directory", where=str(Path.cwd()), expected="tune_spaces/*.yaml here",
                      got="none", fix="run from the project directory or pass --space FILE")


def build_parser() -> argparse.ArgumentParser:
    """The argument parser, exposed for tests and docs."""
    p = argparse.ArgumentParser(prog="python -m medsight_ray.tune", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    which = p.add_mutually_exclusive_group()
    which.add_argument("--space", help="search-space YAML of one stage")
    which.add_argument("--pipeline", help="task whose stages are tuned in order, with tune_spaces/<stage>.yaml")
    which.add_argument("--resume", help="experiment directory of an interrupted sweep")
    p.add_argument("--data", help="dataset directory or URI")
    p.add_argument("--out", help="output directory (default ./medsight_results/<timestamp>)")
    p.add_argument("--storage", help="Ray storage for trials and checkpoints (path or URI; default OUT)")
    p.add_argument("--samples", type=int, help="trials per stage (default: the space's num_samples)")
    p.add_argument("--max-concurrent", type=int, default=1, help="trials at once (default 1)")
    p.add_argument("--seed", type=int, default=0, help="TPE seed")
    p.add_argument("--no-asha", action="store_true", help="turn ASHA early stopping off")
    p.add_argument("--workers", type=int, help="Train workers per trial (fit.workers)")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", dest="overrides",
                   help="config override for every trial")
    p.add_argument("--address", help="Ray address (default: RAY_ADDRESS, else local Ray on 127.0.0.1)")
    return p


def demo_data() -> str:
    """Synthesise (once) the demo's concepts dataset into the cache directory."""
    from medsight_ray.data.store import list_dataset
    from medsight_ray.data.synth import synthesize
    from medsight_ray.errors import DataError

    cache = Path(os.environ.get("MEDSIGHT_CACHE", Path.home() / ".cache" / "medsight_ray"))
    path = cache / f"demo-concepts-{DEMO_ROWS}x{DEMO_SIZE}"
    try:
        list_dataset(path)
    except DataError:
        print(f"synthesising the demo dataset into {path}", flush=True)
        synthesize("concepts", path, rows=DEMO_ROWS, image_size=DEMO_SIZE, seed=0)
    return str(path)


def _plan(args: argparse.Namespace) -> tuple[str, list[tuple[Any, list[str], int | None]]]:
    """(data, [(space, extra overrides, samples)]) for the request."""
    from medsight_ray.stages.registry import pipeline
    from medsight_ray.tune.space import load_space

    demo = not (args.space or args.pipeline)
    if demo:
        data = args.data or demo_data()
        plan = []
        for name, (samples, epochs) in DEMO_PLAN.items():
            extra = [f"fit.epochs={epochs}", f"data.image_size={DEMO_SIZE}", "fit.cpus_per_worker=0.5"]
            plan.append((load_space(spaces_dir() / f"{name}.yaml"), extra, args.samples or samples))
        return data, plan
    if not args.data:
        raise ConfigError("no dataset given", where="--data", expected="a dataset directory or URI", got="nothing")
    if args.space:
        return args.data, [(load_space(args.space), [], args.samples)]
    return args.data, [(load_space(spaces_dir() / f"{s.name}.yaml"), [], args.samples) for s in pipeline(args.pipeline)]


def _print_stage(section: dict[str, Any]) -> None:
    key = section["primary_metric"]
    print(f"\n== {section['stage']}: {len(section['trials'])} trials", flush=True)
    print(f"   {'trial':<12} {'status':<10} {'epochs':>6} {key:>16}  stop reason")
    for t in section["trials"]:
        value = t["best"].get(key)
        shown = f"{value:.4f}" if isinstance(value, float) else "-"
        print(f"   {t['trial_id']:<12} {t['status']:<10} {t['epochs_run']:>6} {shown:>16}  {t['stop_reason'] or ''}")
    best = section["best"]
    if best:
        print(f"   best: {best['trial_id']} {key} {best['best'].get(key, float('nan')):.4f} config {best['config']}")


def _resumed(directory: str) -> argparse.Namespace:
    """The request of the interrupted sweep in ``directory``, set to resume there."""
    file = Path(directory) / "request.json"
    try:
        previous = json.loads(file.read_text())
    except (OSError, json.JSONDecodeError) as err:
        raise ConfigError("not the directory of an earlier sweep", where=str(file),
                          expected="request.json written by python -m medsight_ray.tune --out DIR",
                          got=f"{type(err).__name__}: {err}") from None
    defaults = vars(build_parser().parse_args([]))
    return argparse.Namespace(**{**defaults, **previous, "resume": directory, "out": directory})


def _share_cores(space: Any, options: Any) -> Any:
    """On a local Ray this run started, share the machine's cores among the trials that
    run at once (:func:`medsight_ray.raylocal.local_machine_overrides`), except for a
    setting the config sets or the space samples."""
    from medsight_ray.raylocal import local_machine_overrides
    from medsight_ray.tune.sweep import base_config

    sampled = {p.key for p in space.params}
    extra = {k: v for k, v in local_machine_overrides(base_config(space, options), options.max_concurrent).items()
             if k not in sampled}
    return replace(options, overrides=(*options.overrides, *(f"{k}={v}" for k, v in extra.items())))


def run(args: argparse.Namespace) -> dict[str, Any]:
    """Run the sweep(s) ``args`` ask for; returns the summary."""
    from medsight_ray.fit.runner import prepare_data, storage_path
    from medsight_ray.raylocal import init_ray
    from medsight_ray.report.build import build_report
    from medsight_ray.report.summary import console_summary
    from medsight_ray.tune.publish import publish
    from medsight_ray.tune.sweep import SweepOptions, preflight, sweep_stage

    started = time.perf_counter()
    if args.resume:
        args = _resumed(args.resume)
    out = Path(args.out or Path("medsight_results") / time.strftime("%Y%m%d-%H%M%S")).resolve()
    storage_path(str(out))  # a named error now, not an OSError after the sweep
    storage = args.storage or str(out)
    storage_path(storage)
    data_uri, plan = _plan(args)
    request = {k: v for k, v in vars(args).items() if k != "resume"} | {"out": str(out), "data": data_uri}
    (out / "request.json").write_text(json.dumps(request, indent=2))
    data = prepare_data(data_uri, plan[0][0].stage.task)
    local = init_ray(args.address)
    overrides = tuple(args.overrides) + ((f"fit.workers={args.workers}",) if args.workers else ())
    stages = [(space, SweepOptions(samples=samples, max_concurrent=args.max_concurrent, seed=args.seed,
                                   asha=not args.no_asha, overrides=tuple(extra) + overrides))
              for space, extra, samples in plan]
    if local:
        stages = [(space, _share_cores(space, options)) for space, options in stages]
    for space, options in stages:
        # Every stage's config, model and resources are checked before the first trial starts.
        preflight(space, data, options)
    summary: dict[str, Any] = {"data": data_uri, "out": str(out), "stages": []}
    checkpoint = None
    for space, options in stages:
        print(f"\n== tuning {space.stage.task}/{space.stage.name} with {space.path}", flush=True)
        section = sweep_stage(space, data, storage, options, checkpoint, resume=bool(args.resume))
        summary["stages"].append(section)
        _print_stage(section)
        if not section["best"]:
            summary["failed"] = f"{section['stage']}: no healthy trial finished with a checkpoint"
            break
        checkpoint = section["best"]["checkpoint"]
    summary["final_model"] = checkpoint if "failed" not in summary else None
    summary["wall_seconds"] = round(time.perf_counter() - started, 1)
    (out / "summary.json").write_text(json.dumps(summary, indent=2, default=str))
    print("\n" + console_summary(summary), flush=True)
    print(f"summary: {out / 'summary.json'} ({summary['wall_seconds']} s)", flush=True)
    try:
        paths = build_report(out)
        print(f"report: {paths['markdown']} (also {paths['html'].name})", flush=True)
    except (MedsightError, OSError) as err:  # the sweep's results stand; say why the report is missing
        print(f"report not written: {err} (run python -m medsight_ray.report {out})", flush=True)
    copied = publish(out, storage)
    if copied:
        print(f"copied summary and report to {storage}", flush=True)
    return summary


def main(argv: list[str] | None = None) -> int:
    """Entry point; returns the exit code."""
    # Before anything imports ray: local Ray then binds every listener to 127.0.0.1.
    set_local_env()
    return exit_code(run(build_parser().parse_args(argv)))


cli = exit_on_error(main)

if __name__ == "__main__":
    cli()
