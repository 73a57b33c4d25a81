"""Do healthy default configs learn? Stage targets on synthetic data and real nuclei.

    python bench/stage_targets.py [--out bench/results/stage_targets.json]

Trains every stage with its default config (1000 synthetic rows at 64 px; grading at
its defaults; segmentation on synthetic shapes and on the 16 real nuclei tiles), prints
target against measured, and writes JSON. Targets: stage 1 concept AUC >= 0.85 with
CAM energy clearly higher inside boxes; stage 3 disease AUC >= 0.80 and F1-macro >= 0.5;
grading F1-macro >= 0.8; segmentation Dice >= 0.8 (synthetic), >= 0.7 (nuclei).
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

from medsight_ray.config import apply_overrides
from medsight_ray.data.importers.pairs import import_pairs
from medsight_ray.data.synth import synthesize
from medsight_ray.fit.runner import prepare_data, run_stage
from medsight_ray.raylocal import init_ray
from medsight_ray.stages.registry import get_stage, pipeline
from medsight_ray.stages.targets import STAGE_TARGETS

ROOT = Path(__file__).resolve().parents[1]
TARGETS = [(stage, metric, target) for stage, targets in STAGE_TARGETS.items() for metric, target in targets]
TARGETS.append(("nuclei/segmentation", "val/dice", 0.7))


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--out", default=str(ROOT / "bench/results/stage_targets.json"))
    p.add_argument("--workers", type=int, default=1)
    p.add_argument("--only-nuclei", action="store_true", help="run only the real-nuclei segmentation")
    args = p.parse_args()
    init_ray(num_cpus=4)
    common = ["fit.cpus_per_worker=0.5", f"fit.workers={args.workers}"]
    work = Path(tempfile.mkdtemp(prefix="medsight_targets_"))
    results: dict[str, dict] = {}
    timings: dict[str, float] = {}
    for task in () if args.only_nuclei else ("concepts", "grading", "segmentation"):
        synthesize(task, work / task, rows=1000, image_size=64, seed=0)
        data = prepare_data(str(work / task), task)
        previous = None
        for stage in pipeline(task):
            start = time.perf_counter()
            r = run_stage(stage, apply_overrides(stage.config_cls(), common), data, str(work / "ray"),
                          f"{task}-{stage.name}", previous)
            timings[f"{task}/{stage.name}"] = time.perf_counter() - start
            results[f"{task}/{stage.name}"] = r.best | {"diagnoses": len(r.diagnoses), "status": r.status}
            previous = r.checkpoint
    import_pairs(ROOT / "tests/fixtures/nuclei/images", ROOT / "tests/fixtures/nuclei/masks", work / "nuclei",
                 image_size=128, patient_regex=r"tile_(\d)", val_fraction=0.25)
    stage = get_stage("segmentation")
    cfg = apply_overrides(stage.config_cls(), [*common, "data.image_size=128", "fit.epochs=40", "fit.batch_size=4",
                                                "data.vflip=0.5"])
    start = time.perf_counter()
    r = run_stage(stage, cfg, prepare_data(str(work / "nuclei"), "segmentation"), str(work / "ray"), "nuclei")
    timings["nuclei/segmentation"] = time.perf_counter() - start
    results["nuclei/segmentation"] = r.best | {"diagnoses": len(r.diagnoses), "status": r.status}
    rows = []
    print(f"{'stage':<28} {'metric':<18} {'target':>7} {'measured':>9} {'ok':>4} {'wall s':>7} {'diagnoses':>9}")
    for stage_key, metric, target in TARGETS:
        if stage_key not in results:
            continue
        value = float(results[stage_key].get(metric, float("nan")))
        rows.append({"stage": stage_key, "metric": metric, "target": target, "measured": value, "ok": value >= target,
                     "wall_seconds": timings[stage_key], "diagnoses": results[stage_key]["diagnoses"]})
        print(f"{stage_key:<28} {metric:<18} {target:>7.2f} {value:>9.4f} {str(value >= target):>4} "
              f"{timings[stage_key]:>7.0f} {results[stage_key]['diagnoses']:>9}")
    out = Path(args.out)
    if args.only_nuclei:
        out = out.with_name(out.stem + "_nuclei.json")
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"rows": rows, "results": results}, indent=2, default=str))


if __name__ == "__main__":
    main()
