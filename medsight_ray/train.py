"""``python -m medsight_ray.train``: train one stage, or a task's whole pipeline, on Ray Train.

    python -m medsight_ray.train --task grading --data URI [--out DIR] [--workers N]
    python -m medsight_ray.train --task concepts --stage prototypes --init CKPT --data URI
    python -m medsight_ray.train --task concepts --pipeline --data URI --set fit.epochs=4
    python -m medsight_ray.train --task grading --print-config --set optim.lr=1e-3
    python -m medsight_ray.train --task grading --data URI --remedies 2

The flags are the grammar every entry point shares (:mod:`medsight_ray.flags`).
``--config FILE`` is a YAML of the stage config (for ``--pipeline``: one section per
stage name). ``--set key=value`` overrides any key; in a pipeline ``stage.key=value``
targets one stage and a plain key every stage. Unknown keys and values outside a
setting's choices are rejected, with the valid ones, before Ray starts. Writes
``OUT/summary.json``, copies the final model to ``OUT/final_model.pt`` and keeps the full
output in ``OUT/logs/``. With ``--remedies N`` a stage stopped by a fatal diagnosis is
trained again from scratch with that diagnosis' remedy applied to its config, up to N
times (:mod:`medsight_ray.health.lineage`); a pipeline goes on from the healed stage,
and ``summary.json`` records each stage's lineage. Exit codes: 0 done, 1 a stage failed
or was stopped by the health monitor (and not healed), 2 bad input.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from typing import Any

from medsight_ray import atomicfile, console, flags
from medsight_ray.config import apply_overrides
from medsight_ray.data.store import child
from medsight_ray.errors import ConfigError, exit_code, exit_on_error, redact_all
from medsight_ray.fit.checkpoint import copy_model_file
from medsight_ray.fit.stage import Stage
from medsight_ray.health.lineage import Attempt, next_attempt
from medsight_ray.raylocal import set_local_env
from medsight_ray.stages.registry import get_stage, pipeline


def build_parser() -> argparse.ArgumentParser:
    """The argument parser, exposed for tests and docs."""
    p = argparse.ArgumentParser(prog="python -m medsight_ray.train", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    flags.add(p, "--task", task={"required": True})
    which = p.add_mutually_exclusive_group()
    flags.add(which, "--stage", "--pipeline")
    flags.add(p, "--data", "--out", "--config", "--set", "--workers", "--seed", "--address", "--skip-check",
            "--print-config", "--verbose", "--remedies", "--mlflow", "--decode-each-epoch")
    p.add_argument("--storage", metavar="URI", help="Ray storage for checkpoints (path or URI; default OUT/ray)")
    p.add_argument("--init", metavar="CKPT", help="checkpoint of the previous stage (model.pt or its directory)")
    return p


def stage_configs(stages: list[Stage], args: argparse.Namespace) -> dict[str, Any]:
    """Each stage's config: defaults ← ``--config`` ← ``--workers``/``--seed`` ← ``--set``."""
    per_stage = flags.stage_overrides([s.name for s in stages], args.config, args.overrides, flags.shorthands(args))
    return {s.name: apply_overrides(s.config_cls(), per_stage[s.name]) for s in stages}


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
        console.say(f"== {stage.task}/{stage.name}: fold {index + 1}/{folds}")
        runs.append(run_stage(stage, cfg, data, storage, f"{stage.task}-{stage.name}-{stamp}-fold{index}",
                              fold=(index, folds, cfg.fit.seed), label=f"fold {index + 1}/{folds}"))
    values = [float(r.best.get(key, float("nan"))) for r in runs]
    report = {"metric": key, "folds": values, "mean": statistics.fmean(values),
              "std": statistics.pstdev(values), "runs": [r.summary() for r in runs]}
    console.say(f"== cross-validation {key}: {report['mean']:.4f} ± {report['std']:.4f} over {folds} folds")
    return report


def run(args: argparse.Namespace) -> dict[str, Any]:
    """Train as ``args`` say; returns the summary written to ``OUT/summary.json``."""
    from medsight_ray.fit.runner import prepare_data, storage_path
    from medsight_ray.report.trackers import check_mlflow

    stages = pipeline(args.task) if args.pipeline else [get_stage(args.task, args.stage)]
    # The user asked for one exact config: heal only when asked.
    args.remedies = flags.remedies(args, default=0)
    configs = stage_configs(stages, args)
    if args.print_config:
        console.say(flags.format_configs({name: (cfg, {}) for name, cfg in configs.items()}, args.task))
        return {}
    if args.init and args.pipeline:
        raise ConfigError("--init names the checkpoint of a single stage", where="--init",
                          expected="--stage S --init CKPT", got="--pipeline --init")
    if not args.data:
        raise ConfigError("no dataset given", where="--data", expected="a dataset directory or URI", got="nothing")
    out = flags.default_out(args, "train")
    storage_path(str(out))
    storage = args.storage or str((out / "ray").resolve())
    storage_path(storage)  # a named error now, not after the first epoch
    mlflow_uri = check_mlflow(args.mlflow, out)
    data = prepare_data(args.data, args.task, check=not args.skip_check)
    for stage in stages:
        # A bad backbone name, feature index or pretrained file fails here, before Ray starts.
        stage.build_model(configs[stage.name], data.info)
    with console.session(out, args.verbose) as log:
        return _train(args, stages, configs, data, out, storage, log, mlflow_uri)


def _train(args: argparse.Namespace, stages: list[Stage], configs: dict[str, Any], data: Any, out: Path,
           storage: str, log: Path | None, mlflow_uri: str | None) -> dict[str, Any]:
    from medsight_ray.raylocal import local_machine_overrides, ray_for_run
    from medsight_ray.report.trackers import export

    summary: dict[str, Any] = {"task": args.task, "data": args.data, "fingerprint": data.fingerprint, "runs": []}
    previous = args.init
    # A run name that exists in storage makes Ray Train resume it, so each invocation
    # gets its own.
    stamp = time.strftime("%Y%m%d-%H%M%S")
    with ray_for_run(args.address, log) as local:
        if local:
            # Alone on a machine it started: use the cores Ray's defaults would leave idle.
            configs = {name: apply_overrides(cfg, local_machine_overrides(cfg)) for name, cfg in configs.items()}
        for stage in stages:
            cfg = configs[stage.name]
            folds = int(getattr(cfg, "kfold", 0))
            # Decoded once (where it pays) for every epoch, fold and remedy run of the stage,
            # and found again by a later stage or invocation at the same size and storage.
            # Writing the mirror costs about one pass of decoding, so a stage that reads
            # its data once (one epoch, no folds) decodes as it reads.
            passes = cfg.fit.epochs * (1 + (folds if folds > 1 else 0))
            stage_data = data if args.decode_each_epoch or passes < 2 else data.decoded_at(
                cfg.data.image_size, child(storage, "decoded"))
            if stage_data.decoded:
                summary.setdefault("decoded", {})[stage.name] = stage_data.decoded
            if folds > 1:
                summary["cross_validation"] = cross_validate(stage, cfg, stage_data, storage, stamp, folds)
            console.say(f"== {stage.task}/{stage.name}: training")
            result, lineage = heal(stage, cfg, stage_data, storage, f"{stage.task}-{stage.name}-{stamp}",
                                   previous, args.remedies)
            summary["runs"].append(result.summary())
            if args.remedies:
                summary.setdefault("lineages", {})[stage.name] = [a.to_dict() for a in lineage]
            key = f"val/{stage.primary_metric}"
            best = result.best.get(key)
            console.say(f"== {stage.task}/{stage.name}: {result.status} after {result.epochs_run} epochs; best {key} "
                        + (f"{best:.4f}" if isinstance(best, float) else "-")
                        + (f" (error: {result.error})" if result.error else "")
                        + (f"; {result.outcome.placement()}" if result.outcome.placement() else ""))
            if result.status == "errored" or result.checkpoint is None:
                summary["failed"] = f"{stage.name}: {result.error or 'no checkpoint'}"
                break
            if result.outcome.stop_reason == "health":
                summary["failed"] = f"{stage.name}: stopped by the health monitor"
                break
            previous = result.checkpoint
    final = summary["runs"][-1]["checkpoint"] if summary["runs"] and "failed" not in summary else None
    if final:
        # From local or object storage alike: the model a user takes away is local.
        copy_model_file(final, out / "final_model.pt")
        summary["final_model"] = str((out / "final_model.pt").resolve())
    atomicfile.write_text(out / "summary.json", json.dumps(redact_all(summary), indent=2, default=str))
    console.say(f"summary: {out / 'summary.json'}")
    for line in export("train", summary, out, mlflow_uri):
        console.say(line)
    return summary


def heal(stage: Stage, cfg: Any, data: Any, storage: str, name: str, init: str | None,
         remedies: int) -> tuple[Any, list[Attempt]]:
    """Train ``stage``; while a fatal diagnosis stops it and attempts remain, train it
    again from scratch (from ``init``) with the diagnosis' next remedy applied.

    Returns:
        The last attempt's :class:`StageResult` and the lineage, one :class:`Attempt`
        per run.
    """
    from medsight_ray.fit.runner import run_stage

    default = stage.config_cls()
    lineage: list[Attempt] = []
    tried: list[str] = []
    while True:
        attempt = len(lineage)
        result = run_stage(stage, cfg, data, storage, name if not attempt else f"{name}-remedy{attempt}", init)
        metric = result.best.get(f"val/{stage.primary_metric}")
        diagnosis, remedy, advice = next_attempt(result.outcome.diagnoses, cfg, default, tried)
        if result.outcome.stop_reason != "health" or diagnosis is None:
            lineage.append(Attempt(attempt, result.status, metric, result.epochs_run))
            return result, lineage
        remedy = remedy if attempt < remedies else None
        lineage.append(Attempt(attempt, result.status, metric, result.epochs_run, diagnosis["rule"], diagnosis["epoch"],
                               remedy.words(cfg) if remedy else None,
                               tuple(remedy.overrides(cfg)) if remedy else (), tuple(a.text for a in advice),
                               dict(diagnosis.get("evidence") or {})))
        if remedy is None:
            if remedies and attempt < remedies:
                console.say(f"== {stage.task}/{stage.name}: no config change left to cure {diagnosis['rule']}; "
                            + "; ".join(a.text for a in advice))
            return result, lineage
        console.say(f"== {stage.task}/{stage.name}: remedy {attempt + 1}/{remedies} for {diagnosis['rule']}: "
                    f"{remedy.words(cfg)}")
        tried.append(remedy.why)
        cfg = remedy.apply(cfg)


def main(argv: list[str] | None = None) -> int:
    """Entry point; returns the exit code."""
    # Before anything imports ray: local Ray then binds every listener to 127.0.0.1.
    set_local_env()
    return exit_code(run(build_parser().parse_args(argv)))


cli = exit_on_error(main)

if __name__ == "__main__":
    cli()
