"""How well does the health monitor detect, and how often does it cry wolf?

    python bench/detection.py [--seeds 5] [--out bench/results/detection] [--only zoo|healthy] [--real DIR]

Recall: every pathology-zoo entry (``medsight_ray.zoo.entries``), with every rule on,
for each seed (the training seed and the synthetic data's seed both vary), and on the
real data where the entry's task fits (``--real``, default ``../shared/realdata``: the
digits in class folders for grading, the nuclei for segmentation). Each entry first
runs with the monitor off to check its ground truth and find the pathology's onset.

False alarms: healthy default recipes of all five stages on synthetic data at several
levels of class imbalance and signal, and on the real digits and nuclei, for each seed.
Any diagnosis on a healthy run is an alarm, listed with its run.

Every run is written to ``OUT/runs/<key>.json`` as it ends, with a fingerprint of the
code that judged it (:data:`JUDGING_CODE`) and of its own recipe, so an interrupted bench resumes where it
stopped, and a record judged by other rules is run again (and left out of the summary
until it is). The summary (``OUT/summary.json`` and a printed table) gives
recall and false alarms per seed, the 95 % upper confidence bound on the false-alarm
rate (Clopper-Pearson), and the latency from onset to the first fatal diagnosis.
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import sys
from pathlib import Path
from typing import Any

from medsight_ray.raylocal import set_local_env
from medsight_ray.tune.sweep import ASHA_GRACE_EPOCHS

set_local_env()

ROOT = Path(__file__).resolve().parent.parent

#: Healthy controls: (name, task, stage, synthetic-data knobs, extra overrides, real dataset).
HEALTHY: tuple[tuple[str, str, str, dict[str, Any], tuple[str, ...], str | None], ...] = (
    ("concepts", "concepts", "concepts", {}, ("fit.epochs=4",), None),
    ("concepts_weak_signal", "concepts", "concepts", {"signal": 0.6}, ("fit.epochs=4",), None),
    ("prototypes", "concepts", "prototypes", {}, ("fit.epochs=3",), None),
    ("diagnosis", "concepts", "diagnosis", {}, ("fit.epochs=3",), None),
    ("grading", "grading", "grading", {}, ("fit.epochs=5",), None),
    ("grading_balanced", "grading", "grading", {"class_priors": (0.25, 0.25, 0.25, 0.25)}, ("fit.epochs=5",), None),
    ("grading_skewed", "grading", "grading", {"class_priors": (0.7, 0.15, 0.1, 0.05)}, ("fit.epochs=5",), None),
    ("grading_92_8", "grading", "grading", {"class_priors": (0.92, 0.08)}, ("fit.epochs=5",), None),
    ("grading_weak_signal", "grading", "grading", {"signal": 0.6}, ("fit.epochs=5",), None),
    ("grading_noisy_labels", "grading", "grading", {"label_noise": 0.15}, ("fit.epochs=5",), None),
    ("segmentation", "segmentation", "segmentation", {}, ("fit.epochs=4",), None),
    ("segmentation_some_empty", "segmentation", "segmentation", {"empty_mask_fraction": 0.3}, ("fit.epochs=4",), None),
    ("segmentation_weak_signal", "segmentation", "segmentation", {"signal": 0.6}, ("fit.epochs=4",), None),
    ("grading_real_digits", "grading", "grading", {}, ("fit.epochs=5",), "digits"),
    ("segmentation_real_nuclei", "segmentation", "segmentation", {}, ("fit.epochs=6", "fit.batch_size=4"), "nuclei"),
    ("concepts_more_epochs", "concepts", "concepts", {}, ("fit.epochs=6",), None),
    ("grading_more_epochs", "grading", "grading", {}, ("fit.epochs=8",), None),
    ("segmentation_dice_only", "segmentation", "segmentation", {}, ("fit.epochs=4", "loss.name=dice"), None),
    ("grading_focal", "grading", "grading", {}, ("fit.epochs=5", "loss.name=focal"), None),
    ("grading_mixup", "grading", "grading", {}, ("fit.epochs=5", "mixup_prob=0.5"), None),
)


def real_dataset(real: Path, name: str, out: Path, seed: int) -> str:
    """Import a real dataset (once per seed: the split and the row order follow it)."""
    from medsight_ray.data.importers.folders import import_class_folders
    from medsight_ray.data.importers.pairs import import_pairs

    path = out / f"real-{name}-s{seed}"
    if not (path / "train-00000.parquet").is_file():
        if name == "digits":
            import_class_folders(real / "digits4", path, image_size=32, mode="L", seed=seed)
        else:
            import_pairs(real / "nuclei/images", real / "nuclei/masks", path, image_size=64, seed=seed)
    return str(path)


#: A tune sweep whose healthy trials join the false-alarm count. Every rule only warns
#: (none ends a trial) and ASHA is off, so each trial runs to its end and its outcome is
#: known; a trial is healthy when it learned and kept it: final skill (metric − chance)
#: / (1 − chance) at least SWEEP_SKILL, and the final metric within SWEEP_KEPT of its
#: best. Any diagnosis on a healthy trial is an alarm.
SWEEP_SPACE = "tune_spaces/grading.yaml"
SWEEP_TRIALS = 8
SWEEP_SKILL = 0.3
SWEEP_KEPT = 0.1
SWEEP_OVERRIDES = ("fit.epochs=5", "data.image_size=32", "fit.batch_size=32", "fit.cpus_per_worker=0.5")

#: The code a run record's verdicts depend on: a record made by other code is run again.
JUDGING_CODE = ("medsight_ray/health/rule.py", "medsight_ray/health/signals.py", "medsight_ray/health/config.py",
                "medsight_ray/health/monitor.py", "medsight_ray/fit/loop.py", "medsight_ray/zoo/entries.py",
                *sorted(str(p.relative_to(ROOT)) for p in (ROOT / "medsight_ray/health/rules").glob("*.py")))


#: Names whose value judges nothing: the words of causes and of the README's rule table
#: (module level, or a rule class's attribute), and the zoo's list of entries (each job
#: hashes its own entry instead, so adding an entry reruns only that entry).
UNJUDGING = {"KNOWLEDGE", "ENTRIES", "causes", "fires_when", "origin"}


def code_fingerprint() -> str:
    """SHA-256 (first 12 hex digits) of what :data:`JUDGING_CODE` does: its syntax tree
    without docstrings (comments are not in it) and without :data:`UNJUDGING`, so mending
    prose reruns nothing."""
    import ast
    import hashlib

    digest = hashlib.sha256()
    for name in JUDGING_CODE:
        tree = ast.parse((ROOT / name).read_text())
        tree.body = [node for node in tree.body if _assigned(node) not in UNJUDGING]
        for node in ast.walk(tree):
            if isinstance(node, ast.ClassDef):
                node.body = [n for n in node.body if _assigned(n) not in UNJUDGING] or [ast.Pass()]
            body = getattr(node, "body", None)
            if (isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)) and body
                    and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant)
                    and isinstance(body[0].value.value, str)):
                node.body = body[1:] or [ast.Pass()]
        digest.update(ast.dump(tree).encode())
    return digest.hexdigest()[:12]


def _assigned(node: Any) -> str | None:
    """The name a module-level (annotated) assignment binds, else None."""
    import ast

    target = node.targets[0] if isinstance(node, ast.Assign) else getattr(node, "target", None)
    return target.id if isinstance(target, ast.Name) else None


def job_fingerprint(code: str, job: dict[str, Any]) -> str:
    """The judging code's fingerprint with the job's own recipe: its zoo entry's source
    (the ``ZooEntry(...)`` call that bears its name) or its healthy control's row."""
    import ast
    import hashlib

    if job["kind"] == "zoo":
        tree = ast.parse((ROOT / "medsight_ray/zoo/entries.py").read_text())
        recipe = next(ast.dump(node) for node in ast.walk(tree)
                      if isinstance(node, ast.Call) and getattr(node.func, "id", None) == "ZooEntry"
                      and node.args and getattr(node.args[0], "value", None) == job["entry"])
    elif job["kind"] == "healthy":
        recipe = repr(next(h for h in HEALTHY if h[0] == job["control"]))
    else:
        recipe = repr((SWEEP_SPACE, SWEEP_TRIALS, SWEEP_SKILL, SWEEP_KEPT, SWEEP_OVERRIDES))
    return hashlib.sha256(f"{code}|{recipe}".encode()).hexdigest()[:12]


def clopper_pearson_upper(k: int, n: int, level: float = 0.95) -> float:
    """One-sided upper confidence bound of a rate from k events in n trials."""
    from scipy.stats import beta

    return 1.0 if k >= n else float(beta.ppf(level, k + 1, n - k))


def jobs(seeds: int, only: str | None) -> list[tuple[str, dict[str, Any]]]:
    """(key, job) for every run of the bench, in order."""
    from medsight_ray.zoo.entries import ENTRIES

    out: list[tuple[str, dict[str, Any]]] = []
    for seed in range(seeds):
        if only != "healthy":
            for entry in (e for e in ENTRIES if e.causes):
                out.append((f"zoo-{entry.name}-synth-s{seed}", {"kind": "zoo", "entry": entry.name, "seed": seed}))
                if entry.real:
                    out.append((f"zoo-{entry.name}-{entry.real}-s{seed}",
                                {"kind": "zoo", "entry": entry.name, "seed": seed, "real": entry.real}))
        if only != "zoo":
            for name, *_ in HEALTHY:
                out.append((f"healthy-{name}-s{seed}", {"kind": "healthy", "control": name, "seed": seed}))
            out.append((f"sweep-grading-s{seed}", {"kind": "sweep", "seed": seed}))
    return out


def run_sweep(seed: int, out: Path, work: Path) -> dict[str, Any]:
    """Tune :data:`SWEEP_SPACE` on synthetic grading data with every rule warning only;
    returns each trial's config, diagnoses, final and best metric, and skill."""
    import subprocess

    import ray

    from medsight_ray.zoo.entries import WARN_ONLY, ZooEntry, dataset_for

    data = dataset_for(out / "data", ZooEntry("healthy_grading", "grading", "grading", ()), data_seed=seed)
    sets = [a for kv in (*SWEEP_OVERRIDES, *WARN_ONLY) for a in ("--set", kv)]
    cmd = [sys.executable, "-m", "medsight_ray.tune", "--space", str(ROOT / SWEEP_SPACE), "--data", data,
           "--out", str(work), "--samples", str(SWEEP_TRIALS), "--no-asha", "--seed", str(seed),
           "--address", ray.get_runtime_context().gcs_address, *sets]
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode not in (0, 1):
        raise RuntimeError(f"sweep exited {proc.returncode}: {proc.stdout[-2000:]}{proc.stderr[-2000:]}")
    return {"name": "sweep_grading", "label": f"-s{seed}", "trials": sweep_trials(work / "summary.json")}


def sweep_trials(summary_path: Path) -> list[dict[str, Any]]:
    """Each trial of a sweep's ``summary.json``: config, diagnoses, final and best
    primary metric, final skill, and whether it counts as healthy (:data:`SWEEP_SKILL`)."""
    from medsight_ray.health.config import HealthConfig
    from medsight_ray.health.rules import skill

    defaults = HealthConfig()
    (stage,) = json.loads(summary_path.read_text())["stages"]
    primary = stage["primary_metric"]
    key = primary if primary.startswith("val/") else f"val/{primary}"
    trials = []
    for t in stage["trials"]:
        final, best = (t.get("final") or {}).get(key), (t.get("best") or {}).get(key)
        # The monitor's own definition of skill, on the trial's final epoch.
        final_skill = skill({"objective": final, "metrics": {"chance": (t.get("final") or {}).get("val/chance")}})
        healthy = (final_skill is not None and final_skill >= SWEEP_SKILL and best is not None
                   and final >= best - SWEEP_KEPT)
        trials.append({"trial_id": t["trial_id"], "config": t["config"], "final_metric": final, "best_metric": best,
                       "skill": final_skill, "healthy": healthy,
                       # The sweep ran every rule as a warning; the severity recorded is
                       # the product default's, what the diagnosis would have done.
                       "fired": [{"rule": d["rule"], "epoch": d["epoch"], "step": d.get("step", 0),
                                  "severity": "fatal" if getattr(defaults, d["rule"]).fatal else "warning"}
                                 for d in t.get("diagnoses", [])]})
    return trials


def run_job(job: dict[str, Any], out: Path, real: Path, cache: dict, work: Path) -> dict[str, Any]:
    """Run one job; its Ray Train runs live in ``work`` (a fresh directory: a run name
    found in its storage would be resumed from there, not started over)."""
    from medsight_ray.zoo.entries import ZooEntry, dataset_for, run_entry, select_entries

    shutil.rmtree(work, ignore_errors=True)
    seed = job["seed"]
    if job["kind"] == "sweep":
        return run_sweep(seed, out, work)
    if job["kind"] == "zoo":
        (entry,) = select_entries((job["entry"],))
        base = real_dataset(real, job["real"], out / "data", seed) if job.get("real") else None
        data = dataset_for(out / "data", entry, data_seed=seed, base=base)
        size = 64 if job.get("real") == "nuclei" else None
        return run_entry(entry, work, data, verify=True, extra=(f"fit.seed={seed}",), image_size=size,
                         label=f"-{job.get('real', 'synth')}-s{seed}", cache=cache)
    name, task, stage, knobs, overrides, real_name = next(h for h in HEALTHY if h[0] == job["control"])
    entry = ZooEntry(f"healthy_{name}", task, stage, (), overrides)
    base = real_dataset(real, real_name, out / "data", seed) if real_name else None
    data = dataset_for(out / "data", entry, data_seed=seed, base=base, knobs=knobs)
    size = 64 if real_name == "nuclei" else None
    return run_entry(entry, work, data, extra=(f"fit.seed={seed}",), image_size=size, label=f"-s{seed}", cache=cache)


def _rules(fired: list[dict[str, Any]], none: str = "-") -> str:
    """``rule@epoch, ...`` of a run's diagnoses, or ``none``."""
    return ", ".join(f"{d['rule']}@{d['epoch']}" for d in fired) or none


def _seed(key: str) -> int:
    """The seed of a run key (``...-s<seed>``, a sweep trial's ``...-s<seed>-<trial id>``)."""
    return int(key.rsplit("-s", 1)[1].split("-")[0])


def summarise(rows: dict[str, dict[str, Any]]) -> dict[str, Any]:
    from medsight_ray.zoo.entries import ENTRIES

    detectable = {e.name: e.detectable for e in ENTRIES}
    causes = {e.name: e.causes for e in ENTRIES}
    # Runs of entries no longer in the zoo are left out; undetectable ones are reported apart.
    zoo = {k: r for k, r in rows.items() if k.startswith("zoo-") and detectable.get(r["name"])}
    hidden = {k: r for k, r in rows.items() if k.startswith("zoo-") and detectable.get(r["name"]) is False}
    healthy = {k: r for k, r in rows.items() if k.startswith("healthy-")}
    # A sweep's healthy trials are healthy runs too (its others are not counted).
    for k, r in rows.items():
        if k.startswith("sweep-"):
            healthy.update({f"{k}-{t['trial_id']}": {"fired": t["fired"]} for t in r["trials"] if t["healthy"]})
    per_entry: dict[str, dict[str, Any]] = {}
    for r in zoo.values():
        variant = f"{r['name']} ({r['label'].split('-')[1]})"
        e = per_entry.setdefault(variant, {"runs": 0, "verified": 0, "detected": 0, "correct": 0, "stopped": 0,
                                           "verified_named_and_stopped": 0, "from_epoch_1": 0,
                                           "from_epoch_1_named_in_grace": 0, "first_fatal": {},
                                           "latency_epochs": []})
        e["runs"] += 1
        e["verified"] += bool(r["pathology_verified"])
        named = r["first_fatal"] in causes[r["name"]] and bool(r["stopped"])
        e["verified_named_and_stopped"] += bool(r["pathology_verified"]) and named
        if r["pathology_verified"] and r["onset_epoch"] == 1:
            # Present from the first epoch: named before ASHA could end the trial unnamed.
            e["from_epoch_1"] += 1
            e["from_epoch_1_named_in_grace"] += named and r["first_fatal_epoch"] <= ASHA_GRACE_EPOCHS
        e["detected"] += r["first_fatal"] is not None
        # Judged against the entry's causes as they are now (a run records them as they were).
        e["correct"] += r["first_fatal"] in causes[r["name"]]
        e["stopped"] += bool(r["stopped"])
        e["first_fatal"][str(r["first_fatal"])] = e["first_fatal"].get(str(r["first_fatal"]), 0) + 1
        if r["onset_epoch"] and r["first_fatal_epoch"]:
            e["latency_epochs"].append(r["first_fatal_epoch"] - r["onset_epoch"])
            spe = r.get("steps_per_epoch") or 0
            # From the end of the onset epoch (where the ground truth is measured) to the
            # diagnosis: a step rule's own step, an epoch rule's end of epoch.
            at = r["first_fatal_step"] if r["first_fatal_step"] else r["first_fatal_epoch"] * spe
            e.setdefault("latency_steps", []).append(at - r["onset_epoch"] * spe)
    alarms = [{"run": k, "fired": r["fired"], "fatal": any(d["severity"] == "fatal" for d in r["fired"])}
              for k, r in healthy.items() if r["fired"]]
    false_stops = sum(a["fatal"] for a in alarms)
    latencies = [x for e in per_entry.values() for x in e["latency_epochs"]]
    latency_steps = [x for e in per_entry.values() for x in e.get("latency_steps", [])]
    seeds = sorted({_seed(k) for k in rows})
    per_seed = {s: {"zoo_runs": sum(_seed(k) == s for k in zoo),
                    "zoo_correct_and_stopped": sum(_seed(k) == s and r["first_fatal"] in causes[r["name"]]
                                                   and r["stopped"] for k, r in zoo.items()),
                    "zoo_verified": sum(_seed(k) == s and bool(r["pathology_verified"]) for k, r in zoo.items()),
                    "zoo_verified_named_and_stopped": sum(
                        _seed(k) == s and bool(r["pathology_verified"]) and r["first_fatal"] in causes[r["name"]]
                        and bool(r["stopped"]) for k, r in zoo.items()),
                    "healthy_runs": sum(_seed(k) == s for k in healthy),
                    "sweep_trials": sum(len(r["trials"]) for k, r in rows.items()
                                        if k.startswith("sweep-") and _seed(k) == s),
                    "alarms": sum(_seed(a["run"]) == s for a in alarms)} for s in seeds}
    invisible = [{"run": k, "truth": r["pathology_verified"], "fired": r["fired"],
                  "final_metric": r["final_metric"]} for k, r in hidden.items()]
    verified = sum(e["verified"] for e in per_entry.values())
    return {"entries": per_entry, "invisible_faults": invisible,
            "verified_runs": verified,
            "verified_named_and_stopped": sum(e["verified_named_and_stopped"] for e in per_entry.values()),
            "from_epoch_1": sum(e["from_epoch_1"] for e in per_entry.values()),
            "from_epoch_1_named_in_grace": sum(e["from_epoch_1_named_in_grace"] for e in per_entry.values()),
            "healthy_runs": len(healthy), "alarms": alarms,
            "false_alarm_upper_95": clopper_pearson_upper(len(alarms), len(healthy)) if healthy else None,
            "false_stops": false_stops,
            "false_stop_upper_95": clopper_pearson_upper(false_stops, len(healthy)) if healthy else None,
            "latency_epochs_median": statistics.median(latencies) if latencies else None,
            "latency_steps_median": statistics.median(latency_steps) if latency_steps else None,
            "per_seed": per_seed}


def table(summary: dict[str, Any]) -> str:
    head = (f"{'entry':<46} {'runs':>4} {'truth':>5} {'correct':>7} {'stopped':>7} {'ok/truth':>8} "
            f"{'latency':>7}  first fatal")
    lines = [head, "-" * len(head)]
    for name, e in sorted(summary["entries"].items()):
        lat = statistics.median(e["latency_epochs"]) if e["latency_epochs"] else "-"
        firsts = ", ".join(f"{k} x{v}" for k, v in sorted(e["first_fatal"].items()))
        ok = f"{e['verified_named_and_stopped']}/{e['verified']}"
        lines.append(f"{name:<46} {e['runs']:>4} {e['verified']:>5} {e['correct']:>7} {e['stopped']:>7} {ok:>8} "
                     f"{lat!s:>7}  {firsts}")
    lines.append(f"runs whose ground truth held: {summary['verified_runs']}, named with a correct cause and "
                 f"stopped: {summary['verified_named_and_stopped']}; present from epoch 1: "
                 f"{summary['from_epoch_1']}, named by epoch {ASHA_GRACE_EPOCHS} (ASHA's grace): "
                 f"{summary['from_epoch_1_named_in_grace']}")
    for f in summary["invisible_faults"]:
        lines.append(f"  not expected to be seen: {f['run']}: truth {f['truth']}, "
                     f"fired {_rules(f['fired'], 'nothing')}")
    lines.append("")
    if summary["healthy_runs"]:
        lines.append(f"healthy runs: {summary['healthy_runs']}, alarms: {len(summary['alarms'])}, "
                     f"95 % upper bound on the false-alarm rate: {summary['false_alarm_upper_95']:.3f}; "
                     f"of them stops: {summary['false_stops']} (bound {summary['false_stop_upper_95']:.3f})")
    if summary.get("stale_records"):
        lines.append(f"stale records (judged by other rules; the next run redoes them): "
                     f"{len(summary['stale_records'])}")
    for a in summary["alarms"]:
        lines.append(f"  alarm: {a['run']}: " + ", ".join(f"{d['rule']}@{d['epoch']}:{d['step']}" for d in a["fired"]))
    lines.append(f"median latency after onset: {summary['latency_epochs_median']} epochs, "
                 f"{summary['latency_steps_median']} steps")
    for s, v in summary["per_seed"].items():
        lines.append(f"  seed {s}: zoo {v['zoo_correct_and_stopped']}/{v['zoo_runs']} correct and stopped "
                     f"({v['zoo_verified_named_and_stopped']}/{v['zoo_verified']} of those whose truth held), "
                     f"alarms {v['alarms']}/{v['healthy_runs']} healthy runs "
                     f"(a sweep of {v['sweep_trials']} trials among them: its healthy ones)")
    return "\n".join(lines)


def markdown(summary: dict[str, Any]) -> str:
    """The zoo, per-seed and alarm tables as Markdown (for BENCHMARKS.md)."""
    lines = ["| entry | runs | ground truth held | named with a correct cause and stopped (of those) | "
             "first fatal rule | median latency after onset, epochs |", "| --- | --- | --- | --- | --- | --- |"]
    for name, e in sorted(summary["entries"].items()):
        lat = statistics.median(e["latency_epochs"]) if e["latency_epochs"] else "–"
        firsts = ", ".join(f"{k} ×{v}" for k, v in sorted(e["first_fatal"].items()))
        lines.append(f"| {name} | {e['runs']} | {e['verified']} | {e['verified_named_and_stopped']} | {firsts} "
                     f"| {lat} |")
    lines += ["", "| seed | zoo runs whose truth held | named and stopped | healthy runs | alarms |",
              "| --- | --- | --- | --- | --- |"]
    for s, v in summary["per_seed"].items():
        lines.append(f"| {s} | {v['zoo_verified']} | {v['zoo_verified_named_and_stopped']} | "
                     f"{v['healthy_runs']} | {v['alarms']} |")
    lines += ["", "| alarm on a healthy run | rules (epoch:step) |", "| --- | --- |"]
    lines += [f"| {a['run']} | " + ", ".join(f"{d['rule']} {d['epoch']}:{d['step']}" for d in a["fired"]) + " |"
              for a in summary["alarms"]] or ["| none | |"]
    return "\n".join(lines)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--seeds", type=int, default=5)
    p.add_argument("--out", default=str(ROOT / "bench/results/detection"))
    p.add_argument("--only", choices=("zoo", "healthy"))
    p.add_argument("--match", default="", help="run only jobs whose key contains this text")
    p.add_argument("--real", default=str(ROOT.parent / "shared/realdata"))
    p.add_argument("--summary-only", action="store_true", help="summarise the runs already in OUT; run nothing")
    p.add_argument("--markdown", action="store_true", help="print the tables as Markdown too")
    args = p.parse_args()
    out = Path(args.out)
    (out / "runs").mkdir(parents=True, exist_ok=True)

    from medsight_ray.raylocal import init_ray

    if not args.summary_only:
        init_ray()
    cache: dict = {}
    code = code_fingerprint()
    expected = {key: job_fingerprint(code, job) for key, job in jobs(max(args.seeds, 5), None)}
    todo = [] if args.summary_only else [(k, j) for k, j in jobs(args.seeds, args.only) if args.match in k]
    for i, (key, job) in enumerate(todo, 1):
        path = out / "runs" / f"{key}.json"
        if path.is_file() and json.loads(path.read_text()).get("code") == expected[key]:
            continue
        row = {**run_job(job, out, Path(args.real), cache, out / "work" / key), "code": expected[key]}
        # The replay reads only the checkpoints' JSON (history, outcome, monitor state);
        # the weights would fill the disk over a few hundred runs. Earlier stages'
        # weights stay: later jobs start from them (``cache``).
        for weights in (out / "work" / key).rglob("*.pt"):
            if not any(part.startswith("prereq-") for part in weights.parts):
                weights.unlink()
        path.write_text(json.dumps(row, indent=2, default=str))
        if "trials" in row:
            fired = "; ".join(f"{t['trial_id']} {'healthy' if t['healthy'] else 'not healthy'}: {_rules(t['fired'])}"
                              for t in row["trials"])
        else:
            fired = _rules(row["fired"])
        print(f"[{i}/{len(todo)}] {key}: {fired} (truth {row.get('pathology_verified')})", flush=True)
    every = {p.stem: json.loads(p.read_text()) for p in sorted((out / "runs").glob("*.json"))}
    # Only the verdicts of the current rules count; older records are listed as stale.
    rows = {k: r for k, r in every.items() if r.get("code") == expected.get(k)}
    summary = {**summarise(rows), "code": code, "stale_records": sorted(set(every) - set(rows))}
    (out / "summary.json").write_text(json.dumps(summary, indent=2, default=str))
    print(table(summary))
    if args.markdown:
        print("\n" + markdown(summary))
    sys.stdout.flush()


if __name__ == "__main__":
    main()
