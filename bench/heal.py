"""Do the remedies heal? Every pathology-zoo entry, with every rule on, and its cure.

    python bench/heal.py [--seeds 3] [--seed K] [--out bench/results/heal] [--match TEXT] [--no-sweep]

Healable entries are those whose cause is in the stage's own config. For each, and each
seed (the training seed and the synthetic data's seed both vary):

* **Remedies**: the entry's broken recipe trained as ``python -m medsight_ray.train
  --remedies 2`` does (:func:`medsight_ray.train.heal`): a stopped run is trained again
  with its diagnosis' remedy, up to 2 times.
* **Healed** means the lineage's last run was not stopped by a fatal diagnosis and its
  best primary metric reaches the bar: the stage target (``stages/targets.py``), or the
  healthy default config's metric on the same data less 0.02 where that is lower (a
  stage without a target, data whose noise caps every recipe).
* **A plain sweep** of the same budget (1 + 2 trials; TPE + ASHA + health stop, no
  remedies) over the stage's own space in ``tune_spaces/``, starting from the broken
  config (its first trial), the entry's other settings fixed: which reaches a healthy
  config first, in trial-epochs?

Entries whose cause is the data, an earlier stage or a bug in code are run once per seed
with remedies on and listed with the advice they got, counted apart. Each run is
written to ``OUT/runs/<key>.json`` as it ends, so an interrupted bench resumes. The table
goes to stdout, the summary to ``OUT/summary.json``.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
from pathlib import Path
from typing import Any

from medsight_ray.raylocal import set_local_env

set_local_env()

ROOT = Path(__file__).resolve().parent.parent
REMEDIES = 2
#: How far below the healthy default's metric on the same data a healed run may end.
REFERENCE_SLACK = 0.02


def cause_kind(entry: Any) -> str:
    """Where the entry's cause lies: ``config`` (healable), ``data``, ``code`` or ``earlier stage``."""
    if entry.fault:
        return "code"
    if entry.earlier_fault:
        return "earlier stage"
    if entry.data_fault:
        return "data"
    return "config"


def primary_target(stage: Any) -> float | None:
    """The stage target of its primary metric, if any."""
    from medsight_ray.stages.targets import STAGE_TARGETS

    key = f"val/{stage.primary_metric}"
    return next((t for k, t in STAGE_TARGETS.get(f"{stage.task}/{stage.name}", []) if k == key), None)


def bar(target: float | None, reference: float | None) -> float:
    """The metric a healed run must reach: the target, or the reference less the slack
    where that is lower (or there is no target)."""
    candidates = [v for v in (target, None if reference is None else reference - REFERENCE_SLACK) if v is not None]
    return min(candidates) if candidates else float("inf")


def _entry_data(entry: Any, out: Path, seed: int) -> str:
    from medsight_ray.zoo.entries import dataset_for

    return dataset_for(out / "data", entry, data_seed=seed)


def run_reference(entry: Any, out: Path, seed: int, data: str) -> float | None:
    """The stage's default config, the entry's epochs and image size, on the entry's data:
    its best primary metric over every planned epoch. Every rule only warns, so the
    yardstick is what the default reaches on this data, not what the monitor let it
    reach (measured: on the overfitting entry's noisy labels the default was stopped
    at epoch 4 of 30 at F1 0.42, which made a bar no cure needs to clear)."""
    from medsight_ray.config import apply_overrides
    from medsight_ray.fit.runner import prepare_data, run_stage
    from medsight_ray.zoo.entries import COMMON, SIZE, WARN_ONLY, stage_of

    stage = stage_of(entry)
    keep = [o for o in entry.overrides if o.split("=")[0] in ("fit.epochs", "data.image_size")]
    cfg = apply_overrides(stage.config_cls(), [*COMMON, f"data.image_size={SIZE[entry.task]}", *keep,
                                               f"fit.seed={seed}", *WARN_ONLY])
    result = run_stage(stage, cfg, prepare_data(data, entry.task), str(out / "work" / "ray"),
                       f"reference-{entry.name}-s{seed}")
    return result.best.get(f"val/{stage.primary_metric}")


def run_remedies(entry: Any, out: Path, seed: int, data: str) -> dict[str, Any]:
    """The broken recipe with ``--remedies 2``: its lineage, trial-epochs and last metric."""
    from medsight_ray.fit.runner import prepare_data
    from medsight_ray.train import heal
    from medsight_ray.zoo.entries import entry_config, stage_of

    stage = stage_of(entry)
    cfg = entry_config(entry, (f"fit.seed={seed}",))
    result, lineage = heal(stage, cfg, prepare_data(data, entry.task), str(out / "work" / "ray"),
                           f"heal-{entry.name}-s{seed}", None, REMEDIES)
    return {"lineage": [a.to_dict() for a in lineage], "trial_epochs": sum(a.epochs_run for a in lineage),
            "stopped": result.outcome.stop_reason == "health",
            "metric": result.best.get(f"val/{stage.primary_metric}")}


def _space_for(entry: Any, seed: int) -> tuple[str, bool]:
    """The stage's own search space, its ranges untouched, with the entry's other settings
    fixed (YAML text), and whether the broken recipe lies inside it.

    Inside, the broken recipe is the sweep's first point. Outside (an lr of 1e4 against
    a range up to 0.1), widening the range to hold it would make every draw worse than a
    user's own sweep; the broken recipe is then trial 1 as run for the remedies (runs
    are deterministic) and the sweep draws the other trials from the stage's ranges.
    """
    import yaml

    from medsight_ray.config import parse_value
    from medsight_ray.health.remedies import value_of
    from medsight_ray.tune.space import _param
    from medsight_ray.zoo.entries import COMMON, SIZE, entry_config

    space = yaml.safe_load((ROOT / "tune_spaces" / f"{entry.stage}.yaml").read_text())
    cfg = entry_config(entry, (f"fit.seed={seed}",))
    searched = set(space["params"])
    settings = (o.split("=", 1) for o in (*COMMON, f"data.image_size={SIZE[entry.task]}", *entry.overrides,
                                           f"fit.seed={seed}"))
    fixed = {k: parse_value(v) for k, v in settings if k not in searched}
    first = {k: value_of(cfg, k) for k in space["params"]}
    inside = all(_param("", k, spec).contains(first[k]) for k, spec in space["params"].items())
    text = yaml.safe_dump({"stage": space["stage"], "num_samples": REMEDIES + inside, "fixed": fixed,
                           "params": space["params"], "points_to_evaluate": [first] if inside else []},
                          sort_keys=False)
    return text, inside


def run_sweep(entry: Any, out: Path, seed: int, data: str, healed_at: float,
              broken: dict[str, Any]) -> dict[str, Any]:
    """A plain sweep (no remedies) of 1 + REMEDIES trials from the broken config; the
    trial-epochs spent until the first healthy trial, in trial order. ``broken`` is the
    broken recipe's own run (the lineage's first attempt), trial 1 where the recipe lies
    outside the stage's space."""
    import ray

    work = out / "work" / f"sweep-{entry.name}-s{seed}"
    work.mkdir(parents=True, exist_ok=True)
    text, inside = _space_for(entry, seed)
    (work / "space.yaml").write_text(text)
    cmd = [sys.executable, "-m", "medsight_ray.tune", "--space", str(work / "space.yaml"), "--data", data,
           "--out", str(work / "out"), "--remedies", "0", "--seed", str(seed),
           "--address", ray.get_runtime_context().gcs_address]
    proc = subprocess.run(cmd, capture_output=True, text=True)
    summary = work / "out" / "summary.json"
    if not summary.is_file():
        raise RuntimeError(f"sweep exited {proc.returncode}: {proc.stdout[-2000:]}{proc.stderr[-2000:]}")
    (stage,) = json.loads(summary.read_text())["stages"]
    key, spent, first_healthy = stage["primary_metric"], 0, None
    trials = [] if inside else [{"config": "the broken recipe (outside the space)", "epochs_run": broken["epochs_run"],
                                 "metric": broken["metric"], "fatal_rules": [broken["rule"]] if broken["rule"] else [],
                                 "healthy": False}]
    spent = 0 if inside else broken["epochs_run"]
    for trial in stage["trials"]:
        spent += trial["epochs_run"]
        metric = (trial.get("best") or {}).get(key)
        ok = (not trial["outcome"].get("fatal_rules") and trial["status"] != "errored"
              and metric is not None and metric >= healed_at)
        trials.append({"config": trial["config"], "epochs_run": trial["epochs_run"], "metric": metric,
                       "fatal_rules": trial["outcome"].get("fatal_rules", []), "healthy": ok})
        if ok and first_healthy is None:
            first_healthy = spent
    return {"inside_space": inside, "trials": trials, "trial_epochs": spent,
            "trial_epochs_to_healthy": first_healthy}


def run_job(entry: Any, out: Path, seed: int, sweep: bool) -> dict[str, Any]:
    """One entry at one seed: reference, remedies and (for a healable entry) the sweep.

    Its runs start from nothing: Ray Train resumes a run whose name it finds in storage,
    so the job's runs left by an interrupted bench are removed first (else the remedies
    would be judged on the old runs' results)."""
    import shutil

    from medsight_ray.zoo.entries import stage_of

    for stale in (*(out / "work" / "ray").glob(f"*-{entry.name}-s{seed}*"),
                  out / "work" / f"sweep-{entry.name}-s{seed}"):
        shutil.rmtree(stale, ignore_errors=True)
    data = _entry_data(entry, out, seed)
    stage = stage_of(entry)
    kind = cause_kind(entry)
    row: dict[str, Any] = {"entry": entry.name, "seed": seed, "stage": f"{entry.task}/{entry.stage}",
                           "kind": kind, "healable": kind == "config"}
    row["reference"] = run_reference(entry, out, seed, data) if kind == "config" else None
    row["bar"] = bar(primary_target(stage), row["reference"])
    row["remedies"] = run_remedies(entry, out, seed, data)
    remedied = row["remedies"]
    row["healed"] = (not remedied["stopped"] and remedied["metric"] is not None and remedied["metric"] >= row["bar"])
    row["advice"] = sorted({a for attempt in remedied["lineage"] for a in attempt["advice"]})
    if sweep and kind == "config":
        row["sweep"] = run_sweep(entry, out, seed, data, row["bar"], remedied["lineage"][0])
    return row


def summarise(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """Per entry: runs, healed, attempts and trial-epochs (remedies and sweep)."""
    entries: dict[str, dict[str, Any]] = {}
    for row in rows:
        e = entries.setdefault(row["entry"], {"kind": row["kind"], "runs": 0, "healed": 0, "attempts": [],
                                             "remedy_trial_epochs": [], "sweeps": 0, "sweep_healthy": 0,
                                             "sweep_trial_epochs_to_healthy": [], "first": [], "advice": set()})
        e["runs"] += 1
        e["healed"] += bool(row["healed"])
        e["attempts"].append(len(row["remedies"]["lineage"]) - 1)
        e["remedy_trial_epochs"].append(row["remedies"]["trial_epochs"])
        e["advice"].update(row["advice"])
        sweep = row.get("sweep")
        if sweep:
            e["sweeps"] += 1
            e["sweep_healthy"] += sweep["trial_epochs_to_healthy"] is not None
            if sweep["trial_epochs_to_healthy"] is not None:
                e["sweep_trial_epochs_to_healthy"].append(sweep["trial_epochs_to_healthy"])
            if row["healed"] and sweep["trial_epochs_to_healthy"] is not None:
                e["first"].append("remedies" if row["remedies"]["trial_epochs"] <= sweep["trial_epochs_to_healthy"]
                                  else "sweep")
            elif row["healed"] or sweep["trial_epochs_to_healthy"] is not None:
                e["first"].append("remedies" if row["healed"] else "sweep")
    healable = [e for e in entries.values() if e["kind"] == "config"]
    runs, healed = sum(e["runs"] for e in healable), sum(e["healed"] for e in healable)
    for e in entries.values():
        e["advice"] = sorted(e["advice"])
    return {"entries": entries, "healable_runs": runs, "healed_runs": healed,
            "heal_rate": healed / runs if runs else None}


def _mean(xs: list[float], none: str) -> str:
    """The mean to one decimal, or ``none`` for no values."""
    return f"{statistics.fmean(xs):.1f}" if xs else none


def table(summary: dict[str, Any]) -> str:
    """The heal table as text."""
    head = (f"{'entry':<28} {'cause':<13} {'healed':>7} {'attempts':>8} {'remedy t-ep':>11} "
            f"{'sweep healthy':>13} {'sweep t-ep':>10}  first")
    lines = [head, "-" * len(head)]
    for name, e in summary["entries"].items():
        swept = f"{e['sweep_healthy']}/{e['sweeps']}" if e["sweeps"] else "-"
        lines.append(f"{name:<28} {e['kind']:<13} {e['healed']:>3}/{e['runs']:<3} {_mean(e['attempts'], '-'):>8} "
                     f"{_mean(e['remedy_trial_epochs'], '-'):>11} {swept:>13} "
                     f"{_mean(e['sweep_trial_epochs_to_healthy'], '-'):>10}  {', '.join(e['first']) or '-'}")
    if summary["heal_rate"] is not None:
        lines.append(f"healable runs healed within {REMEDIES} remedies: {summary['healed_runs']}/"
                     f"{summary['healable_runs']} ({100 * summary['heal_rate']:.0f} %)")
    return "\n".join(lines)


def markdown(summary: dict[str, Any]) -> str:
    """The heal table as Markdown (for BENCHMARKS.md): per entry, runs healed, remedies
    applied, trial-epochs of the remedies' lineage, and the plain sweep's."""
    lines = ["| entry | cause | healed | remedies applied (mean) | lineage trial-epochs (mean) | plain sweep "
             "reached healthy | its trial-epochs to healthy (mean) | first to healthy |",
             "| --- | --- | --- | --- | --- | --- | --- | --- |"]
    for name, e in summary["entries"].items():
        swept = f"{e['sweep_healthy']}/{e['sweeps']}" if e["sweeps"] else "–"
        firsts = ", ".join(f"{k} ×{e['first'].count(k)}" for k in sorted(set(e["first"]))) or "–"
        lines.append(f"| {name} | {e['kind']} | {e['healed']}/{e['runs']} | {_mean(e['attempts'], '–')} | "
                     f"{_mean(e['remedy_trial_epochs'], '–')} | {swept} | "
                     f"{_mean(e['sweep_trial_epochs_to_healthy'], '–')} | "
                     f"{firsts} |")
    return "\n".join(lines)


def _claim(lock: Path) -> bool:
    """Take the job whose lock file this is, unless a live process holds it: processes
    sharing ``--out`` then split the jobs (a job's start removes its runs, so two
    processes on one job would wreck each other's)."""
    import os

    try:
        fd = os.open(lock, os.O_CREAT | os.O_EXCL | os.O_WRONLY)
    except FileExistsError:
        holder = lock.read_text().strip()
        if holder.isdigit() and int(holder) > 0 and _alive(int(holder)):
            return False
        lock.write_text(str(os.getpid()))  # left by a process that died
        return True
    with os.fdopen(fd, "w") as f:
        f.write(str(os.getpid()))
    return True


def _alive(pid: int) -> bool:
    """True when process ``pid`` exists (signal 0 only checks)."""
    import os

    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--seeds", type=int, default=3)
    p.add_argument("--seed", type=int, default=None,
                   help="run only this seed (processes each running one seed share --out)")
    p.add_argument("--out", default=str(ROOT / "bench/results/heal"))
    p.add_argument("--match", default="", help="only entries whose name contains this text")
    p.add_argument("--no-sweep", action="store_true", help="skip the plain-sweep comparison")
    p.add_argument("--summary-only", action="store_true", help="summarise the runs already in OUT; run nothing")
    p.add_argument("--markdown", action="store_true", help="print the table as Markdown too")
    args = p.parse_args()
    out = Path(args.out)
    (out / "runs").mkdir(parents=True, exist_ok=True)

    from medsight_ray.raylocal import init_ray
    from medsight_ray.zoo.entries import ENTRIES

    if not args.summary_only:
        init_ray()
    seeds = range(args.seeds) if args.seed is None else (args.seed,)
    chosen = [e for e in ENTRIES if e.causes and args.match in e.name]
    # The healable entries first, every seed: they are the bench's measure; the others
    # only report the advice they got.
    todo = [] if args.summary_only else sorted(((e, s) for s in seeds for e in chosen),
                                                key=lambda es: cause_kind(es[0]) != "config")
    for entry, seed in todo:
        path = out / "runs" / f"{entry.name}-s{seed}.json"
        if path.is_file() or not _claim(path.with_suffix(".lock")):
            continue
        row = run_job(entry, out, seed, sweep=not args.no_sweep)
        path.write_text(json.dumps(row, indent=2, default=str))
        path.with_suffix(".lock").unlink()
        print(f"{entry.name} s{seed}: {'healed' if row['healed'] else 'not healed'} "
              f"({row['remedies']['metric']}, bar {row['bar']:.3g})", flush=True)
    rows = [json.loads(p.read_text()) for p in sorted((out / "runs").glob("*.json"))]
    summary = summarise(rows)
    (out / "summary.json").write_text(json.dumps(summary, indent=2, default=str))
    print(table(summary))
    if args.markdown:
        print("\n" + markdown(summary))


if __name__ == "__main__":
    main()
