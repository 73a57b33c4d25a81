"""Verdicts on runs the rules were not fitted to: recipes users launch, and natural failures.

    python bench/recipes.py [--out bench/results/recipes] [--seeds 2] [--only NAME,...] [--rerun]
                            [--summary [--replay]]

A corpus of runs that users launch (fine-tuning from a pretrained file, SGD, OneCycle,
long cosine schedules, label smoothing, MixUp, a frozen-backbone warm-up, a 95/5
imbalance, batch 8 and 128, 32 and 128 px, mixed precision on CPU, dense segmentation,
prototypes for 30 epochs) on the real data in ``../shared/realdata`` (handwritten
digits, nuclei) and on synthetic data, plus natural failures that are not zoo entries
(a far-too-low lr, blank and constant images, shuffled labels, a too-high lr under SGD).
None of these runs was used to set a threshold.

Each run trains once with every rule warning only, so it runs to its end; the verdict
scored is the one the monitor would have given with its default fatal rules
(:func:`medsight_ray.zoo.entries.product_stop`): its first fatal diagnosis, and the
first remedy ``--remedies`` would have applied.

**Truth, from the run's own end.** Written down before the runs of its round, and not
changed after them:

- skill per epoch = (primary metric - chance) / (1 - chance), on the validation split;
- **healthy**: best skill >= 0.3 and the last epoch's skill >= best - 0.15 (it learned
  and kept it);
- **failed**: best skill < 0.1, with its cause the first of:
  ``inputs`` (the validation images' spread < 1e-3), ``lr_low`` (a largest per-step
  weight change < 1e-4 of the weights' norm), ``lr_high`` (a non-finite train loss, a
  last train loss above the loss at the start, or a largest per-step weight change
  > 0.1), ``labels`` (the train loss fell > 30 % from its start: the model fits labels
  that do not generalise), else ``unclear``;
- **weak**: anything between; reported, and left out of both counts.

This is definition 2 (:data:`TRUTH_DEFINITION`), written after round 1 (seed 0) and
before any later run. Definition 1 tested ``lr_high`` before ``lr_low``, so a run whose
weights did not move, and whose flat loss ended above its start by the batches' noise
alone, was labelled ``lr_high`` (nuclei at lr 1e-7 in round 1). Weights that do not move
cannot be why a loss rose, so the weight test now comes first. Each record keeps the
definition that labelled it; round 1's records are not relabelled (their loss curves
are not kept).

**Scoring.** A healthy run with a verdict is a false alarm. A failed run without one is a
miss; with one, its cause is right when the verdict's cause (:data:`VERDICT_CAUSE`, for
``chance_metric`` the direction of its remedy) is the truth's. A remedy points the wrong
way when it lowers the learning rate of a run whose truth is ``lr_low``, raises it on
``lr_high``, or raises a pretrained backbone's rate. The summary gives the false alarms
with their 95 % Clopper-Pearson bound.
"""

from __future__ import annotations

import argparse
import json
import math
import random
import shutil
import sys
import time
from pathlib import Path
from typing import Any

from medsight_ray.raylocal import set_local_env

set_local_env()

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "bench"))

from detection import clopper_pearson_upper  # noqa: E402
from replay_health import feed  # noqa: E402

REAL = ROOT.parent / "shared" / "realdata"
TINY = ("fit.cpus_per_worker=0.5", "model.backbone.name=resnet10t", "fit.torch_threads=1")

#: The corpus: (name, dataset, task, stage, overrides). Datasets are built by :func:`dataset`.
RECIPES: tuple[tuple[str, str, str, str, tuple[str, ...]], ...] = (
    ("digits_default", "digits", "grading", "grading", ("fit.epochs=8",)),
    ("digits_finetune_1e-4", "digits", "grading", "grading", ("fit.epochs=6", "optim.lr=1e-4", "PRETRAINED")),
    ("digits_finetune_3e-5", "digits", "grading", "grading", ("fit.epochs=6", "optim.lr=3e-5", "PRETRAINED")),
    ("digits_finetune_backbone_0.1", "digits", "grading", "grading",
     ("fit.epochs=6", "optim.lr=1e-3", "optim.backbone_lr_scale=0.1", "PRETRAINED")),
    ("digits_sgd_0.01", "digits", "grading", "grading", ("fit.epochs=8", "optim.name=sgd", "optim.lr=0.01")),
    ("digits_sgd_0.1", "digits", "grading", "grading", ("fit.epochs=8", "optim.name=sgd", "optim.lr=0.1")),
    ("digits_onecycle", "digits", "grading", "grading", ("fit.epochs=8", "optim.scheduler=onecycle")),
    ("digits_cosine_30", "digits", "grading", "grading", ("fit.epochs=30", "optim.scheduler=cosine")),
    ("digits_smoothing_0", "digits", "grading", "grading", ("fit.epochs=10", "loss.label_smoothing=0.0")),
    ("digits_smoothing_0.1", "digits", "grading", "grading", ("fit.epochs=10", "loss.label_smoothing=0.1")),
    ("digits_smoothing_0.3", "digits", "grading", "grading", ("fit.epochs=10", "loss.label_smoothing=0.3")),
    ("digits_mixup", "digits", "grading", "grading", ("fit.epochs=10", "mixup_prob=0.5")),
    ("digits_frozen_warmup", "digits", "grading", "grading", ("fit.epochs=8", "freeze_backbone_epochs=2")),
    ("digits_95_5", "digits_95_5", "grading", "grading", ("fit.epochs=8",)),
    ("digits_batch_8", "digits", "grading", "grading", ("fit.epochs=6", "fit.batch_size=8")),
    ("digits_batch_128", "digits", "grading", "grading", ("fit.epochs=12", "fit.batch_size=128")),
    ("digits_128px", "digits128", "grading", "grading", ("fit.epochs=6", "data.image_size=128")),
    ("digits_amp_bfloat16", "digits", "grading", "grading",
     ("fit.epochs=8", "fit.amp_on_cpu=true", "fit.amp_dtype=bfloat16")),
    ("digits_amp_float16", "digits", "grading", "grading",
     ("fit.epochs=8", "fit.amp_on_cpu=true", "fit.amp_dtype=float16")),
    ("synth_grading_default", "synth_grading", "grading", "grading", ("fit.epochs=6",)),
    ("synth_grading_cosine_30", "synth_grading", "grading", "grading", ("fit.epochs=30", "optim.scheduler=cosine")),
    ("nuclei_default", "nuclei", "segmentation", "segmentation", ("fit.epochs=8", "fit.batch_size=4")),
    ("synth_dense_segmentation", "synth_dense_seg", "segmentation", "segmentation", ("fit.epochs=6",)),
    ("synth_concepts_default", "synth_concepts", "concepts", "concepts", ("fit.epochs=5",)),
    ("synth_prototypes_30", "synth_concepts", "concepts", "prototypes", ("fit.epochs=30",)),
    # Natural failures, none of them a zoo entry.
    ("digits_lr_1e-7", "digits", "grading", "grading", ("fit.epochs=6", "optim.lr=1e-7")),
    ("synth_grading_lr_1e-7", "synth_grading", "grading", "grading", ("fit.epochs=6", "optim.lr=1e-7")),
    ("digits_gray_images", "digits_gray", "grading", "grading", ("fit.epochs=5",)),
    ("digits_blank_images", "digits_blank", "grading", "grading", ("fit.epochs=5",)),
    ("digits_shuffled_labels", "digits_shuffled", "grading", "grading", ("fit.epochs=8",)),
    ("digits_sgd_lr_3", "digits", "grading", "grading", ("fit.epochs=6", "optim.name=sgd", "optim.lr=3.0")),
    ("nuclei_lr_1e-7", "nuclei", "segmentation", "segmentation",
     ("fit.epochs=6", "fit.batch_size=4", "optim.lr=1e-7")),
)

#: The cause each rule's verdict names (``chance_metric``: by its remedy's direction;
#: ``dead_outputs`` on a ranking turned below the model's start: ``labels``).
VERDICT_CAUSE = {
    "outputs_ignore_input": "inputs", "not_learning": "lr_low", "vanishing_gradients": "lr_low",
    "oversized_updates": "lr_high", "exploding_gradients": "lr_high", "non_finite": "lr_high",
    "diverging_loss": "lr_high", "dead_outputs": "lr_high", "loss_scale_collapse": "lr_high",
    "loss_falls_metric_flat": "labels", "class_collapse": "recipe", "prediction_collapse": "recipe",
    "prototype_collapse": "recipe", "overfitting": "overfitting", "unmixed_batches": "data_order",
    "inverted_localisation": "labels",
}


#: The truth definition new records are labelled by (the module docstring gives both).
TRUTH_DEFINITION = 2


def _skills(history: list[dict[str, Any]], primary: str) -> list[float]:
    out = []
    for h in history:
        metric, chance = h.get(f"val/{primary}"), h.get("val/chance")
        if isinstance(metric, (int, float)) and isinstance(chance, (int, float)) and chance < 1:
            out.append((metric - chance) / (1 - chance))
    return out


def truth(history: list[dict[str, Any]], primary: str) -> tuple[str, str | None]:
    """(``healthy`` | ``failed`` | ``weak``, the failed run's cause) by the module's definition."""
    skills = _skills(history, primary)
    if not skills:
        return "failed", "unclear"
    best, last = max(skills), skills[-1]
    if best >= 0.3 and last >= best - 0.15:
        return "healthy", None
    if best >= 0.1:
        return "weak", None
    ratios = [h["train/update_ratio"] for h in history if isinstance(h.get("train/update_ratio"), float)]
    losses = [h.get("train/loss") for h in history]
    start = history[0].get("train/loss_start") or losses[0]
    spread = history[-1].get("val/input_spread")
    if isinstance(spread, float) and spread < 1e-3:
        return "failed", "inputs"
    finite = all(isinstance(x, float) and math.isfinite(x) for x in losses)
    if finite and ratios and max(ratios) < 1e-4:
        return "failed", "lr_low"
    if not finite or losses[-1] > start or (ratios and max(ratios) > 0.1):
        return "failed", "lr_high"
    if losses[-1] < 0.7 * start:
        return "failed", "labels"
    return "failed", "unclear"


def verdict(diagnoses: list[dict[str, Any]], cfg: Any, default: Any) -> dict[str, Any]:
    """The default monitor's verdict on a warn-only run: first fatal rule, its cause, and
    the first remedy ``--remedies`` applies (``{key: (old, new)}``)."""
    from medsight_ray.health.remedies import next_remedy, plan, value_of
    from medsight_ray.zoo.entries import fired_rules, product_stop, would_stop

    fired = product_stop(fired_rules(diagnoses), would_stop(cfg))
    first = next((d for d in fired if d["severity"] == "fatal"), None)
    if first is None:
        return {"rule": None, "cause": None, "remedy": {}}
    diagnosis = next(d for d in diagnoses if d["rule"] == first["rule"])
    remedy = next_remedy(plan(first["rule"], diagnosis["evidence"], cfg, default), cfg)
    changed = {k: (value_of(cfg, k), v) for k, v in (remedy.changed(cfg) if remedy else {}).items()}
    cause = VERDICT_CAUSE.get(first["rule"])
    if first["rule"] == "dead_outputs" and "start_auc" in diagnosis["evidence"]:
        cause = "labels"  # a ranking learnt below its start, which the rule lays on the labels
    if first["rule"] == "chance_metric":
        lr = changed.get("optim.lr")
        cause = "labels" if lr is None else "lr_low" if lr[1] > lr[0] else "lr_high"
    return {"rule": first["rule"], "epoch": first["epoch"], "cause": cause,
            "remedy": {k: [old, new] for k, (old, new) in changed.items()}}


def wrong_way(truth_cause: str | None, remedy: dict[str, list], pretrained: bool) -> bool:
    """Does the remedy move the learning rate against the truth?"""
    lr = remedy.get("optim.lr")
    up = lr is not None and lr[1] > lr[0]
    down = lr is not None and lr[1] < lr[0]
    backbone = remedy.get("optim.backbone_lr_scale")
    return bool((truth_cause == "lr_low" and down) or (truth_cause == "lr_high" and up)
                or (pretrained and (up or (backbone is not None and backbone[1] > backbone[0]))))


def _rewrite(src: Path, dst: Path, edit) -> None:
    import pyarrow as pa

    from medsight_ray.zoo.datafaults import rewrite_dataset

    def table_edit(name: str, table: pa.Table) -> pa.Table:
        return pa.Table.from_pylist(edit(table.to_pylist()), schema=table.schema) if "image" in table.column_names \
            else table

    rewrite_dataset(src, dst, table_edit)


def dataset(name: str, root: Path, seed: int) -> str:
    """Build (once) and return the dataset called ``name``."""
    import numpy as np

    from medsight_ray.data.images import encode_png
    from medsight_ray.data.importers.folders import import_class_folders
    from medsight_ray.data.importers.pairs import import_pairs
    from medsight_ray.data.synth import Knobs, synthesize

    path = root / f"{name}-s{seed}"
    if (path / "train-00000.parquet").is_file():
        return str(path)
    if name in ("digits", "digits128"):
        import_class_folders(REAL / "digits4", path, image_size=128 if name == "digits128" else 32, mode="L",
                             seed=seed)
    elif name == "digits_95_5":
        tree = root / f"tree-95-5-s{seed}"
        shutil.rmtree(tree, ignore_errors=True)
        rng = random.Random(seed)
        for cls, keep in (("zero", None), ("one", 9)):
            files = sorted((REAL / "digits4" / cls).iterdir())
            (tree / cls).mkdir(parents=True)
            for f in files if keep is None else rng.sample(files, keep):
                shutil.copy(f, tree / cls / f.name)
        import_class_folders(tree, path, image_size=32, mode="L", seed=seed)
    elif name in ("digits_gray", "digits_blank"):
        value = 128 if name == "digits_gray" else 0
        png = encode_png(np.full((32, 32), value, dtype=np.uint8))
        _rewrite(Path(dataset("digits", root, seed)), path, lambda rows: [{**r, "image": png} for r in rows])
    elif name == "digits_shuffled":
        rng = random.Random(seed)

        def shuffle(rows: list[dict]) -> list[dict]:
            labels = [r["label"] for r in rows]
            rng.shuffle(labels)
            return [{**r, "label": label} for r, label in zip(rows, labels)]

        _rewrite(Path(dataset("digits", root, seed)), path, shuffle)
    elif name == "nuclei":
        import_pairs(REAL / "nuclei/images", REAL / "nuclei/masks", path, image_size=64, seed=seed)
    elif name == "synth_grading":
        synthesize("grading", path, rows=400, image_size=32, seed=seed, knobs=Knobs())
    elif name == "synth_dense_seg":
        # Segment the background of the synthetic task: 88 % foreground (its objects
        # cover 12 %, the real nuclei 20 %), a task a dense mask serves.
        from medsight_ray.data.images import decode_image

        def invert(rows: list[dict]) -> list[dict]:
            out = []
            for r in rows:
                mask = decode_image(r["mask"], "L")
                out.append({**r, "mask": encode_png(np.where(mask > 0, 0, 255).astype(np.uint8))})
            return out

        _rewrite(Path(dataset("synth_seg", root, seed)), path, invert)
    elif name == "synth_seg":
        synthesize("segmentation", path, rows=300, image_size=32, seed=seed, knobs=Knobs())
    elif name == "synth_concepts":
        synthesize("concepts", path, rows=400, image_size=48, seed=seed, knobs=Knobs())
    else:
        raise ValueError(name)
    return str(path)


def pretrained_file(root: Path, seed: int, work: Path) -> str:
    """A "pretrained" backbone file: grading trained briefly on the digits (another
    seed's split and order), its backbone weights saved; nothing is downloaded."""
    import torch

    from medsight_ray.config import apply_overrides
    from medsight_ray.fit.checkpoint import load_model_file
    from medsight_ray.fit.runner import prepare_data, run_stage
    from medsight_ray.stages.registry import get_stage

    path = root / f"pretrained-s{seed}.pt"
    if path.is_file():
        return str(path)
    stage = get_stage("grading")
    cfg = apply_overrides(stage.config_cls(), [*TINY, "data.image_size=32", "fit.epochs=8", f"fit.seed={seed + 50}"])
    result = run_stage(stage, cfg, prepare_data(dataset("digits", root, seed + 50), "grading"), str(work),
                       f"pretrain-{seed}")
    state = load_model_file(result.checkpoint)["state_dict"]
    torch.save({k: v for k, v in state.items() if k.startswith("backbone.")}, path)
    return str(path)


def recipe_config(recipe: tuple, seed: int, pretrained_path: str | None) -> Any:
    """The stage config a recipe trains with (before every rule is made warn-only)."""
    from medsight_ray.config import apply_overrides
    from medsight_ray.stages.registry import get_stage

    name, data_name, task, stage_name, overrides = recipe
    sets = [o for o in overrides if o != "PRETRAINED"]
    if pretrained_path:
        sets.append(f"model.backbone.pretrained_path={pretrained_path}")
    size = next((o.split("=")[1] for o in sets if o.startswith("data.image_size=")), None)
    default_size = {"nuclei": "64", "synth_concepts": "48"}.get(data_name, "32")
    return apply_overrides(get_stage(task, stage_name).config_cls(),
                           [*TINY, f"data.image_size={size or default_size}", f"fit.seed={seed}", *sets])


def rescore(row: dict[str, Any]) -> dict[str, Any]:
    """A record's verdict again, from its stored diagnoses, by the current remedies
    (the rules' checks themselves need the run again)."""
    from medsight_ray.stages.registry import get_stage

    recipe = next(r for r in RECIPES if r[0] == row["name"])
    cfg = recipe_config(recipe, row["seed"], "pretrained.pt" if row.get("pretrained") else None)
    judged = verdict(row["diagnoses"], cfg, get_stage(recipe[2], recipe[3]).config_cls())
    return {**row, "verdict": judged,
            "correct_cause": judged["cause"] == row["truth_cause"] if row["truth"] == "failed" and judged["rule"]
            else None, "wrong_way": wrong_way(row["truth_cause"], judged["remedy"], bool(row.get("pretrained")))}


def replay(row: dict[str, Any]) -> dict[str, Any]:
    """A kept run judged again by the current epoch rules, without training: its history
    (every epoch's signals, kept since round 3) and its measured start are fed to a
    monitor with the run's config, epoch by epoch, as the fit loop feeds them. The step
    rules judge every optimiser step, which a history does not keep, so their recorded
    diagnoses stand (a change to a step rule needs ``--rerun``). A record without a
    history is rescored only (:func:`rescore`)."""
    from dataclasses import replace

    from medsight_ray.health.monitor import HealthMonitor
    from medsight_ray.health.rules import SKIPPED_STEP_RULES, STEP_RULES
    from medsight_ray.stages.registry import get_stage
    from medsight_ray.zoo.entries import warn_only

    if "history" not in row:
        return rescore(row)
    recipe = next(r for r in RECIPES if r[0] == row["name"])
    stage = get_stage(recipe[2], recipe[3])
    cfg = recipe_config(recipe, row["seed"], "pretrained.pt" if row.get("pretrained") else None)
    health = warn_only(cfg).health
    # The step rules' verdicts are the recorded ones; here they only count the steps.
    health = replace(health, **{n: replace(getattr(health, n), enabled=False) for n in (*STEP_RULES,
                                                                                          *SKIPPED_STEP_RULES)})
    monitor = HealthMonitor(health, f"{recipe[2]}/{recipe[3]}", stage.primary_metric, cfg)
    if row.get("start_metrics"):
        monitor.on_start(row["start_metrics"])
    feed(monitor, row["history"])
    step_rules = {*STEP_RULES, *SKIPPED_STEP_RULES}
    diagnoses = [d for d in row["diagnoses"] if d["rule"] in step_rules] + [
        {k: v for k, v in d.to_dict().items() if k in ("rule", "severity", "epoch", "step", "evidence")}
        for d in monitor.diagnoses]
    return rescore({**row, "diagnoses": diagnoses})


def run_recipe(recipe: tuple, seed: int, root: Path, work: Path, cache: dict) -> dict[str, Any]:
    from medsight_ray.fit.runner import prepare_data, run_stage
    from medsight_ray.stages.registry import get_stage
    from medsight_ray.zoo.entries import ZooEntry, _previous_stage, warn_only

    name, data_name, task, stage_name, overrides = recipe
    stage = get_stage(task, stage_name)
    pretrained = "PRETRAINED" in overrides
    cfg = recipe_config(recipe, seed, pretrained_file(root, seed, work) if pretrained else None)
    data = dataset(data_name, root, seed)
    prepared = prepare_data(data, task)
    init = None
    if stage.order > 1:
        init = _previous_stage(ZooEntry(name, task, stage_name), data, prepared, work, cfg, cache)
    start = time.perf_counter()
    result = run_stage(stage, warn_only(cfg), prepared, str(work / "ray"), f"{name}-s{seed}", init)
    state, cause = truth(result.history, stage.primary_metric)
    judged = verdict(list(result.outcome.diagnoses), cfg, stage.config_cls())
    return {"name": name, "seed": seed, "truth": state, "truth_cause": cause,
            "truth_definition": TRUTH_DEFINITION, "verdict": judged,
            "pretrained": pretrained, "overrides": list(overrides),
            "diagnoses": [{k: d.get(k) for k in ("rule", "severity", "epoch", "step", "evidence")}
                          for d in result.outcome.diagnoses],
            "correct_cause": judged["cause"] == cause if state == "failed" and judged["rule"] else None,
            "wrong_way": wrong_way(cause, judged["remedy"], pretrained),
            "skills": [round(s, 3) for s in _skills(result.history, stage.primary_metric)],
            "start": {k: result.outcome.start.get(k) for k in ("objective", "auc_macro", "score_spread")},
            # Every epoch's signals and the whole start, so that a later change to an
            # epoch rule can be replayed on this run (:func:`replay`) before the corpus is
            # trained again.
            "history": result.history, "start_metrics": result.outcome.start,
            "not_judged": sorted(result.outcome.not_judged), "epochs": result.outcome.epochs_run,
            "wall_s": round(time.perf_counter() - start, 1)}


def summarise(rows: list[dict[str, Any]]) -> dict[str, Any]:
    healthy = [r for r in rows if r["truth"] == "healthy"]
    failed = [r for r in rows if r["truth"] == "failed"]
    alarms = [r for r in healthy if r["verdict"]["rule"]]
    missed = [r for r in failed if not r["verdict"]["rule"]]
    wrong = [r for r in failed if r["verdict"]["rule"] and not r["correct_cause"]]
    definitions = sorted({r.get("truth_definition", 1) for r in rows})
    return {"runs": len(rows), "truth_definitions": definitions,
            "healthy": len(healthy), "weak": sum(r["truth"] == "weak" for r in rows),
            "failed": len(failed), "false_alarms": len(alarms),
            "false_alarm_bound_95": clopper_pearson_upper(len(alarms), len(healthy)) if healthy else None,
            "alarms": [f"{r['name']}-s{r['seed']}: {r['verdict']['rule']}" for r in alarms],
            "missed": [f"{r['name']}-s{r['seed']} ({r['truth_cause']}"
                       + (f"; not judged: {', '.join(r['not_judged'])})" if r.get("not_judged") else ")")
                       for r in missed],
            "wrong_cause": [f"{r['name']}-s{r['seed']}: {r['verdict']['rule']} for {r['truth_cause']}" for r in wrong],
            "named_right": len(failed) - len(missed) - len(wrong),
            "wrong_way": [f"{r['name']}-s{r['seed']}: {r['verdict']['remedy']}" for r in rows if r["wrong_way"]]}


def table(rows: list[dict[str, Any]]) -> str:
    lines = ["| run | truth | skill (best / last) | verdict | remedy |", "| --- | --- | --- | --- | --- |"]
    for r in rows:
        skills = r["skills"]
        shown = f"{max(skills):.2f} / {skills[-1]:.2f}" if skills else "-"
        v = r["verdict"]
        remedy = ", ".join(f"{k} {a:g}->{b:g}" if isinstance(a, float) else f"{k} {a}->{b}"
                           for k, (a, b) in v["remedy"].items()) or "-"
        state = r["truth"] + (f" ({r['truth_cause']})" if r["truth_cause"] else "")
        said = f"{v['rule']} at epoch {v['epoch']}" if v["rule"] else "-"
        lines.append(f"| {r['name']}-s{r['seed']} | {state} | {shown} | {said} | {remedy} |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", type=Path, default=ROOT / "bench/results/recipes")
    parser.add_argument("--seeds", type=int, default=2)
    parser.add_argument("--only", default="", help="comma-separated recipe names")
    parser.add_argument("--rerun", action="store_true", help="train the kept runs again")
    parser.add_argument("--summary", action="store_true", help="train nothing: judge the kept runs and summarise")
    parser.add_argument("--replay", action="store_true",
                        help="with --summary: judge the kept runs' histories by the current epoch rules")
    args = parser.parse_args()
    from medsight_ray.raylocal import init_ray

    if not args.summary:
        init_ray()
    runs, root, work = args.out / "runs", args.out / "data", args.out / "work"
    runs.mkdir(parents=True, exist_ok=True)
    root.mkdir(parents=True, exist_ok=True)
    only = set(filter(None, args.only.split(",")))
    cache: dict = {}
    rows = []
    for seed in range(0 if args.summary else args.seeds):
        for recipe in RECIPES:
            if only and recipe[0] not in only:
                continue
            record = runs / f"{recipe[0]}-s{seed}.json"
            if record.is_file():
                # A kept run is judged again by the current remedies (``--rerun`` trains
                # it again, for a change of the rules' checks).
                if args.rerun:
                    record.unlink()
                else:
                    rows.append(rescore(json.loads(record.read_text())))
                    continue
            shutil.rmtree(work / "ray", ignore_errors=True)
            try:
                row = run_recipe(recipe, seed, root, work, cache)
            except Exception as err:  # one broken recipe must not lose the others' runs
                print(f"{recipe[0]}-s{seed}: FAILED {type(err).__name__}: {err}", flush=True)
                continue
            record.write_text(json.dumps(row, indent=2, default=str))
            print(f"{row['name']}-s{seed}: {row['truth']} {row['truth_cause'] or ''} -> "
                  f"{row['verdict']['rule'] or 'quiet'} ({row['wall_s']} s)", flush=True)
            rows.append(row)
    if only or args.summary:
        # The summary covers every kept run, not only the ones named here.
        judge = replay if args.replay else rescore
        rows = [judge(json.loads(p.read_text())) for p in sorted(runs.glob("*.json"))]
    summary = summarise(rows)
    # The histories stay in the run records; the summary is the verdicts.
    brief = [{k: v for k, v in r.items() if k not in ("history", "start_metrics")} for r in rows]
    (args.out / "summary.json").write_text(json.dumps({"summary": summary, "runs": brief}, indent=2, default=str))
    print(table(rows))
    print(json.dumps(summary, indent=2))


if __name__ == "__main__":
    main()
