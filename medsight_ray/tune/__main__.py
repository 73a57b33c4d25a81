"""``python -m medsight_ray.tune``: Ray Tune + Optuna over YAML search spaces.

    python -m medsight_ray.tune                                   # the demo (see below)
    python -m medsight_ray.tune --space tune_spaces/grading.yaml --data URI [--out DIR]
    python -m medsight_ray.tune --task concepts --pipeline --data URI   # stage 1, then 2, then 3
    python -m medsight_ray.tune --task grading --data URI         # tune_spaces/<stage>.yaml
    python -m medsight_ray.tune --resume --out DIR                # finish an interrupted sweep
    python -m medsight_ray.tune --space F --print-config          # what every trial starts from

On a cluster: ``ray job submit --working-dir . -- python -m medsight_ray.tune ...``.
The flags are the grammar every entry point shares (:mod:`medsight_ray.flags`);
``--seed`` seeds TPE and every trial's training.

With no arguments it runs a small demo on local Ray: a synthetic chest X-ray concepts
dataset is written to a cache directory, and the 3-stage pipeline is tuned with the
seeds' original settings among the first points. Each stage's best healthy trial's
checkpoint starts the next stage's trials. ``OUT/summary.json`` lists every trial;
``OUT/logs/`` holds the full output. Exit codes: 0 done, 1 a stage had no usable
trial, 2 bad input.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

from medsight_ray import atomicfile, console, flags
from medsight_ray.errors import ConfigError, MedsightError, exit_code, exit_on_error, redact_all
from medsight_ray.raylocal import set_local_env
from medsight_ray.tune.trust import check_trusted

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
    p.add_argument("--space", metavar="FILE", help="search-space YAML of one stage")
    flags.add(p, "--task")
    which = p.add_mutually_exclusive_group()
    flags.add(which, "--stage", "--pipeline")
    flags.add(p, "--data", "--out", "--config", "--set", "--workers", "--seed", "--address", "--skip-check",
              "--print-config", "--verbose", "--remedies", "--mlflow", "--decode-each-epoch")
    p.add_argument("--resume", action="store_true", help="finish the interrupted sweep in --out")
    p.add_argument("--storage", metavar="URI", help="Ray storage for trials and checkpoints (path or URI; default OUT)")
    p.add_argument("--samples", type=int, help="trials per stage (default: the space's num_samples)")
    p.add_argument("--max-concurrent", type=int, default=1, help="trials at once (default 1)")
    p.add_argument("--no-asha", action="store_true", help="turn ASHA early stopping off")
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
        console.say(f"synthesising the demo dataset into {path}")
        synthesize("concepts", path, rows=DEMO_ROWS, image_size=DEMO_SIZE, seed=0)
    return str(path)


def _plan(args: argparse.Namespace) -> tuple[str | None, list[tuple[Any, list[str], int | None]]]:
    """(data, [(space, overrides in order of precedence, samples)]) for the request."""
    from medsight_ray.stages.registry import get_stage, pipeline
    from medsight_ray.tune.space import load_space

    if args.space and (args.task or args.stage or args.pipeline):
        raise ConfigError("--space names its own stage", where="--space",
                          expected="--space FILE, or --task T [--stage S | --pipeline]",
                          got="--space with --task/--stage/--pipeline")
    if (args.stage or args.pipeline) and not args.task:
        raise ConfigError("--stage and --pipeline need a task", where="--task", expected="--task T", got="nothing")
    demo = not (args.space or args.task)
    extras: dict[str, list[str]] = {}
    samples: dict[str, int | None] = {}
    if demo:
        spaces = [load_space(spaces_dir() / f"{name}.yaml") for name in DEMO_PLAN]
        for space in spaces:
            trials, epochs = DEMO_PLAN[space.stage.name]
            extras[space.stage.name] = [f"fit.epochs={epochs}", f"data.image_size={DEMO_SIZE}",
                                        "fit.cpus_per_worker=0.5"]
            samples[space.stage.name] = args.samples or trials
    elif args.space:
        spaces = [load_space(args.space)]
    else:
        stages = pipeline(args.task) if args.pipeline else [get_stage(args.task, args.stage)]
        spaces = [load_space(spaces_dir() / f"{s.name}.yaml") for s in stages]
    per_stage = flags.stage_overrides([s.stage.name for s in spaces], args.config, args.overrides,
                                      flags.shorthands(args))
    plan = [(s, extras.get(s.stage.name, []) + per_stage[s.stage.name], samples.get(s.stage.name, args.samples))
            for s in spaces]
    if not demo and not args.data and not args.print_config:
        raise ConfigError("no dataset given", where="--data", expected="a dataset directory or URI", got="nothing")
    return (args.data or (demo_data() if demo and not args.print_config else None)), plan


def _print_stage(section: dict[str, Any]) -> None:
    key = section["primary_metric"]
    console.say(f"== {section['stage']}: {len(section['trials'])} trials")
    console.say(f"   {'trial':<12} {'status':<10} {'epochs':>6} {key:>16}  stop reason")
    for t in section["trials"]:
        value = t["best"].get(key)
        shown = f"{value:.4f}" if isinstance(value, float) else "-"
        console.say(f"   {t['trial_id']:<12} {t['status']:<10} {t['epochs_run']:>6} {shown:>16}  "
                    f"{t['stop_reason'] or ''}")
    best = section["best"]
    if best:
        value = best["best"].get(key, float("nan"))
        console.say(f"   best: {best['trial_id']} {key} {value:.4f} config {best['config']}")


def _resumed(args: argparse.Namespace) -> argparse.Namespace:
    """The request of the interrupted sweep in ``--out``, set to resume there."""
    if not args.out:
        raise ConfigError("--resume needs the sweep's directory", where="--out",
                          expected="--resume --out DIR (the --out of the interrupted sweep)", got="nothing")
    file = Path(args.out) / "request.json"
    check_trusted(args.out)
    try:
        previous = json.loads(file.read_text())
    except (OSError, json.JSONDecodeError) as err:
        raise ConfigError("not the directory of an earlier sweep", where=str(file),
                          expected="request.json written by python -m medsight_ray.tune --out DIR",
                          got=f"{type(err).__name__}: {err}") from None
    defaults = vars(build_parser().parse_args([]))
    known = {k: v for k, v in previous.items() if k in defaults}
    # The request was saved redacted: URIs given again win, so their keys need not be saved.
    return argparse.Namespace(**{**defaults, **known, "resume": True, "out": args.out, "verbose": args.verbose,
                                 "address": args.address or known.get("address"),
                                 "data": args.data or known.get("data"),
                                 "storage": args.storage or known.get("storage")})


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
    from medsight_ray.report.trackers import check_mlflow
    from medsight_ray.tune.sweep import SweepOptions, base_config, preflight

    started = time.perf_counter()
    if args.resume:
        args = _resumed(args)
    data_uri, plan = _plan(args)
    stages = [(space, SweepOptions(samples=samples, max_concurrent=args.max_concurrent,
                                   seed=args.seed if args.seed is not None else 0,
                                   asha=not args.no_asha, overrides=tuple(overrides),
                                   decode_once=not args.decode_each_epoch,
                                   # A sweep explores: a diagnosed trial is followed by its cure.
                                   remedies=flags.remedies(args, default=2)))
              for space, overrides, samples in plan]
    # Every key and value is checked first: a typo costs no data check and no Ray start.
    configs = {space.stage.name: (base_config(space, options), {p.key: f"sampled: {p.describe()}"
                                                                for p in space.params})
               for space, options in stages}
    if args.print_config:
        console.say(flags.format_configs(configs, stages[0][0].stage.task))
        return {}
    out = flags.default_out(args, "tune").resolve()
    storage_path(str(out))  # a named error now, not an OSError after the sweep
    storage = args.storage or str(out)
    storage_path(storage)
    mlflow_uri = check_mlflow(args.mlflow, out)
    data = prepare_data(data_uri, plan[0][0].stage.task, check=not args.skip_check)
    for space, options in stages:
        # Every stage's config and model are checked before Ray starts.
        preflight(space, data, options)
    request = {k: v for k, v in vars(args).items() if k not in ("resume", "verbose", "print_config")}
    # Saved redacted: a resumed sweep takes its keys from the same URIs given again
    # (--data/--storage on the command line win over the request) or from the environment.
    atomicfile.write_text(out / "request.json",
                          json.dumps(redact_all(request | {"out": str(out), "data": data_uri}), indent=2))
    with console.session(out, args.verbose) as log:
        return _sweep(args, stages, data, data_uri, out, storage, log, started, mlflow_uri)


def _sweep(args: argparse.Namespace, stages: list[tuple[Any, Any]], data: Any, data_uri: str, out: Path,
           storage: str, log: Path | None, started: float, mlflow_uri: str | None) -> dict[str, Any]:
    from medsight_ray.fit.runner import check_resources
    from medsight_ray.raylocal import ray_for_run
    from medsight_ray.report.build import build_report
    from medsight_ray.report.summary import console_summary
    from medsight_ray.report.trackers import export
    from medsight_ray.tune.publish import publish
    from medsight_ray.tune.sweep import base_config, sweep_stage

    with ray_for_run(args.address, log) as local:
        if local:
            stages = [(space, _share_cores(space, options)) for space, options in stages]
        for space, options in stages:
            # More workers than the cluster holds would make a trial wait for ever.
            check_resources(base_config(space, options))
        summary: dict[str, Any] = {"data": data_uri, "out": str(out), "stages": []}
        checkpoint = None
        for space, options in stages:
            console.say(f"\n== tuning {space.stage.task}/{space.stage.name} with {space.path}")
            section = sweep_stage(space, data, storage, options, checkpoint, resume=bool(args.resume))
            summary["stages"].append(section)
            _print_stage(section)
            if not section["best"]:
                summary["failed"] = f"{section['stage']}: no healthy trial finished with a checkpoint"
                break
            checkpoint = section["best"]["checkpoint"]
        summary["final_model"] = checkpoint if "failed" not in summary else None
        summary["wall_seconds"] = round(time.perf_counter() - started, 1)
        atomicfile.write_text(out / "summary.json", json.dumps(redact_all(summary), indent=2, default=str))
        console.say("\n" + console_summary(summary))
        console.say(f"summary: {out / 'summary.json'} ({summary['wall_seconds']} s)")
        try:
            paths = build_report(out)
            console.say(f"report: {paths['markdown']} (also {paths['html'].name})")
        except (MedsightError, OSError) as err:  # the sweep's results stand; say why the report is missing
            console.say(f"report not written: {err} (run python -m medsight_ray.report --out {out})")
        if publish(out, storage):
            console.say(f"copied summary and report to {storage}")
        for line in export("sweep", summary, out, mlflow_uri):
            console.say(line)
    return summary


def main(argv: list[str] | None = None) -> int:
    """Entry point; returns the exit code."""
    # Before anything imports ray: local Ray then binds every listener to 127.0.0.1.
    set_local_env()
    return exit_code(run(build_parser().parse_args(argv)))


cli = exit_on_error(main)

if __name__ == "__main__":
    cli()
