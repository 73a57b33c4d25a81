"""Does health-aware tuning save compute without losing the best model?

    python bench/zoo_sweep.py [--order interleaved|healthy-first] [--rows 400] [--size 32] [--epochs 8]
                              [--arms a_health+asha,b_asha,c_none] [--seeds 1] [--out FILE]

One fixed grading sweep, run in three arms with the same trials in the same order (every
trial is a ``points_to_evaluate`` entry, so TPE samples nothing and the arms differ only
in how they stop trials):

* (a) health stopper + ASHA (the default of ``python -m medsight_ray.tune``);
* (b) ASHA alone (health monitor off);
* (c) no early stopping (health monitor off, ASHA off).

Trials: four healthy recipes and three from the pathology zoo (a learning rate far too
high without clipping, one far too low, and seed 003's collapse recipe). Reported per
arm: trial-epochs, trial wall seconds and reserved CPU-seconds (wall × the CPUs a trial
reserves), the best validation F1 among healthy trials, pathological trials stopped
(recall), healthy trials stopped by the health monitor (false stops) and by ASHA, and
the median epochs to detection. Targets: (a) ≤ 40 % of (c)'s trial-epochs and ≤ 70 % of
(b)'s, same best metric ± 0.01, recall 100 %, no false stops.

``--seeds N`` repeats the whole comparison N times, seed s drawing the dataset
(``synthesize(seed=s)``) and every trial's run (``fit.seed=s``), and reports each figure
as mean ± standard deviation and range over the seeds. Results are written after each
seed, and a rerun with the same ``--out`` skips the seeds it holds.
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
DEFAULTS = {"optim.lr": 3.0e-3, "optim.name": "adamw", "fit.grad_clip": 1.0, "loss.name": "ce",
            "loss.class_weight_power": 1.0, "loss.class_weight_min": 0.75, "loss.class_weight_max": 1.5,
            "mixup_prob": 0.0, "fit.batch_size": 32, "sampler.balanced": False}
TRIALS: dict[str, tuple[bool, dict]] = {  # in healthy-first order  # name → (pathological, changes from DEFAULTS)
    "healthy_default": (False, {}),
    "healthy_lr_1e-3": (False, {"optim.lr": 1.0e-3}),
    "lr_far_too_high": (True, {"optim.lr": 1.0e4, "optim.name": "sgd", "fit.grad_clip": 0.0}),
    "healthy_lr_1e-2": (False, {"optim.lr": 1.0e-2}),
    "lr_far_too_low": (True, {"optim.lr": 1.0e-7}),
    "healthy_focal": (False, {"loss.name": "focal"}),
    "seed003_recipe": (True, {"loss.name": "focal", "loss.class_weight_power": 1.5, "loss.class_weight_min": 0.0,
                              "loss.class_weight_max": 1.0e6, "mixup_prob": 0.5, "fit.batch_size": 2,
                              "sampler.balanced": True}),
}
PARAMS = {
    "optim.lr": {"dist": "loguniform", "low": 1.0e-8, "high": 1.0e5},
    "optim.name": {"dist": "categorical", "choices": ["adamw", "sgd"]},
    "fit.grad_clip": {"dist": "categorical", "choices": [0.0, 1.0]},
    "loss.name": {"dist": "categorical", "choices": ["ce", "focal"]},
    "loss.class_weight_power": {"dist": "uniform", "low": 0.0, "high": 2.0},
    "loss.class_weight_min": {"dist": "uniform", "low": 0.0, "high": 1.0},
    "loss.class_weight_max": {"dist": "loguniform", "low": 1.0, "high": 1.0e6},
    "mixup_prob": {"dist": "uniform", "low": 0.0, "high": 0.5},
    "fit.batch_size": {"dist": "categorical", "choices": [2, 32]},
    "sampler.balanced": {"dist": "categorical", "choices": [False, True]},
}
ORDERS = {
    "healthy-first": ["healthy_default", "healthy_lr_1e-3", "healthy_lr_1e-2", "healthy_focal",
                      "lr_far_too_high", "lr_far_too_low", "seed003_recipe"],
    "interleaved": ["lr_far_too_high", "healthy_default", "lr_far_too_low", "healthy_lr_1e-3",
                    "seed003_recipe", "healthy_lr_1e-2", "healthy_focal"],
}
ARMS = {"a_health+asha": (True, True), "b_asha": (False, True), "c_none": (False, False)}
TRIAL_CPUS = 0.1 + 0.5  # the trial's driver plus its one Train worker


def _space(path: Path, epochs: int, size: int, order: str, seed: int = 0) -> Path:
    points = [{**DEFAULTS, **TRIALS[name][1]} for name in ORDERS[order]]
    path.write_text(yaml.safe_dump({
        "stage": "grading/grading", "num_samples": len(points),
        "fixed": {"fit.epochs": epochs, "data.image_size": size, "fit.cpus_per_worker": 0.5, "fit.seed": seed},
        "params": PARAMS, "points_to_evaluate": points}))
    return path


def _name(config: dict) -> str:
    for name, (_, changes) in TRIALS.items():
        if all(config.get(k) == v for k, v in {**DEFAULTS, **changes}.items()):
            return name
    return "sampled"


def _arm_row(section: dict, wall: float) -> dict:
    rows = []
    for t in section["trials"]:
        name = _name(t["config"])
        fatal = [d for d in t["diagnoses"] if d.get("severity") == "fatal"]
        steps = int(sum(h.get("train/steps", 0) or 0 for h in t["history"]))
        rows.append({"trial": name, "pathological": TRIALS[name][0], "epochs": t["epochs_run"], "steps": steps,
                     "wall_s": t["wall_seconds"], "status": t["status"], "stop_reason": t["stop_reason"],
                     "health_stopped": bool(fatal), "detected_epoch": min((d["epoch"] for d in fatal), default=None),
                     "rule": fatal[0]["rule"] if fatal else None,
                     "f1": t["best"].get("val/f1_macro")})
    path = [r for r in rows if r["pathological"]]
    healthy = [r for r in rows if not r["pathological"]]
    detected = [r["detected_epoch"] or r["epochs"] for r in path if r["status"] == "stopped"]
    return {
        "trials": rows, "arm_wall_s": wall,
        "trial_epochs": sum(r["epochs"] for r in rows),
        "trial_steps": sum(r["steps"] for r in rows),
        "trial_wall_s": sum(r["wall_s"] for r in rows),
        "reserved_cpu_s": sum(r["wall_s"] for r in rows) * TRIAL_CPUS,
        "best_f1": max((r["f1"] for r in healthy if isinstance(r["f1"], float)), default=float("nan")),
        "pathological_stopped": sum(r["status"] == "stopped" for r in path), "pathological": len(path),
        "healthy_health_stopped": sum(r["health_stopped"] for r in healthy),
        "healthy_asha_stopped": sum(r["status"] == "stopped" and not r["health_stopped"] for r in healthy),
        "median_epochs_to_stop": statistics.median(detected) if detected else None,
    }


def _print_arms(arms: dict, order: str) -> dict:
    """The per-arm table of one seed; returns the ratios (when all three arms ran)."""
    print(f"\norder: {order}\n{'arm':<14} {'trial-ep':>8} {'steps':>6} {'trial s':>8} {'CPU-s':>7} {'best F1':>8} "
          f"{'path stopped':>12} "
          f"{'false stops':>11} {'ASHA-stopped healthy':>20} {'median ep':>9}")
    for arm, r in arms.items():
        print(f"{arm:<14} {r['trial_epochs']:>8} {r['trial_steps']:>6} {r['trial_wall_s']:>8.0f} "
              f"{r['reserved_cpu_s']:>7.0f} "
              f"{r['best_f1']:>8.3f} {r['pathological_stopped']:>5}/{r['pathological']:<6} "
              f"{r['healthy_health_stopped']:>11} {r['healthy_asha_stopped']:>20} "
              f"{r['median_epochs_to_stop'] if r['median_epochs_to_stop'] is not None else '-':>9}")
    ratios: dict = {}
    if set(ARMS) <= set(arms):
        for unit in ("trial_epochs", "trial_steps", "reserved_cpu_s"):
            a, b, c = (arms[k][unit] for k in ARMS)
            ratios[unit] = {"a_over_c": a / c, "a_over_b": a / b}
            print(f"{unit:<15} (a)/(c) {a / c:.2f} (target <= 0.40); (a)/(b) {a / b:.2f} (target <= 0.70)")
        ratios["best_f1"] = {"a_minus_c": arms["a_health+asha"]["best_f1"] - arms["c_none"]["best_f1"],
                             "b_minus_c": arms["b_asha"]["best_f1"] - arms["c_none"]["best_f1"]}
        print(f"best F1 a-c {ratios['best_f1']['a_minus_c']:+.3f}, b-c {ratios['best_f1']['b_minus_c']:+.3f}")
    return ratios


def _spread(values: list[float]) -> dict:
    """Mean, standard deviation (0 for one value) and range of ``values``."""
    return {"mean": statistics.fmean(values), "sd": statistics.stdev(values) if len(values) > 1 else 0.0,
            "min": min(values), "max": max(values), "n": len(values)}


def across_seeds(seeds: dict) -> dict:
    """Each figure over the seeds that ran every arm: mean ± sd and range."""
    full = [r for r in seeds.values() if r.get("ratios")]
    if not full:
        return {}
    out = {f"{unit}_{k}": _spread([r["ratios"][unit][k] for r in full])
           for unit in ("trial_epochs", "trial_steps", "reserved_cpu_s") for k in ("a_over_c", "a_over_b")}
    out["best_f1_a_minus_c"] = _spread([r["ratios"]["best_f1"]["a_minus_c"] for r in full])
    a = [r["a_health+asha"] for r in full]
    out["recall_a"] = {"stopped": sum(x["pathological_stopped"] for x in a), "of": sum(x["pathological"] for x in a)}
    out["false_stops_a"] = sum(x["healthy_health_stopped"] for x in a)
    out["median_epochs_to_stop_a"] = _spread([x["median_epochs_to_stop"] for x in a
                                              if x["median_epochs_to_stop"] is not None] or [float("nan")])
    return out


def run_seed(args: argparse.Namespace, seed: int, work: Path) -> dict:
    """Every arm of the comparison on the dataset and runs of ``seed``."""
    from medsight_ray.data.synth import synthesize
    from medsight_ray.fit.runner import prepare_data
    from medsight_ray.tune.space import load_space
    from medsight_ray.tune.sweep import SweepOptions, sweep_stage

    synthesize("grading", work / "data", rows=args.rows, image_size=args.size, seed=seed)
    space = load_space(_space(work / "space.yaml", args.epochs, args.size, args.order, seed))
    data = prepare_data(str(work / "data"), "grading")
    results: dict = {}
    for arm in args.arms.split(","):
        health, asha = ARMS[arm]
        options = SweepOptions(seed=seed, asha=asha, health_stop=health,
                               overrides=() if health else ("health.enabled=false",))
        start = time.perf_counter()
        section = sweep_stage(space, data, str(work / "storage"), options, name=f"zoo-{arm}")
        results[arm] = _arm_row(section, time.perf_counter() - start)
        print(f"== seed {seed} {arm}: {results[arm]['trial_epochs']} trial-epochs, "
              f"best F1 {results[arm]['best_f1']:.3f}", flush=True)
    results["ratios"] = _print_arms({k: v for k, v in results.items() if k in ARMS}, args.order)
    return results


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--order", choices=sorted(ORDERS), default="interleaved")
    p.add_argument("--rows", type=int, default=400)
    p.add_argument("--size", type=int, default=32)
    p.add_argument("--epochs", type=int, default=8)
    p.add_argument("--arms", default=",".join(ARMS), help="comma-separated subset of " + ",".join(ARMS))
    p.add_argument("--seeds", type=int, default=1, help="seeds 0..N-1 (data and runs)")
    p.add_argument("--out", help="JSON results (default bench/results/zoo_sweep_<order>.json)")
    args = p.parse_args()

    from medsight_ray.raylocal import init_ray

    out = Path(args.out or ROOT / f"bench/results/zoo_sweep_{args.order}.json")
    kept = json.loads(out.read_text()) if out.exists() else {}
    results: dict = {"order": ORDERS[args.order], "seeds": kept.get("seeds", {})}
    init_ray(num_cpus=4)
    for seed in range(args.seeds):
        if str(seed) in results["seeds"]:
            continue
        results["seeds"][str(seed)] = run_seed(args, seed, Path(tempfile.mkdtemp(prefix="medsight_zoo_sweep_")))
        results["across_seeds"] = across_seeds(results["seeds"])
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps(results, indent=2, default=str))
    summary = results.get("across_seeds") or {}
    if summary:
        print(f"\nover {summary['trial_epochs_a_over_c']['n']} seeds (mean +- sd, range):")
        for key, v in summary.items():
            if isinstance(v, dict) and "mean" in v:
                print(f"{key:<28} {v['mean']:.3f} +- {v['sd']:.3f}  [{v['min']:.3f}, {v['max']:.3f}]")
        print(f"recall (a) {summary['recall_a']['stopped']}/{summary['recall_a']['of']}; "
              f"false stops (a) {summary['false_stops_a']}")


if __name__ == "__main__":
    main()
