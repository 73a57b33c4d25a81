"""The pathology zoo: named, reproducible failure configs, each from a seed.

Each entry is one stage run with a broken recipe. ``verify`` first runs it with the
monitor off and checks the pathology in the metric itself (the ground truth is the
metric, not the detector); the zoo run then trains with the monitor on and records
which rule fired, at which epoch, and whether the run was stopped. Healthy default
configs run beside them, and must raise nothing.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from medsight_ray.config import apply_overrides
from medsight_ray.console import say
from medsight_ray.errors import ConfigError

History = list[dict[str, Any]]


def _last(history: History, key: str) -> float:
    values = [h.get(key) for h in history if isinstance(h.get(key), (int, float))]
    return float(values[-1]) if values else float("nan")


@dataclass(frozen=True)
class ZooEntry:
    """One failure config.

    Attributes:
        name: entry name.
        task, stage: what it trains.
        expected_rule: the rule that must detect it (None for a healthy control).
        overrides: config overrides of the broken recipe.
        knobs: synthetic-data knobs (for the entry's own dataset).
        truth: the pathology, measured on the run's metric history (monitor off).
        seed_claim: what the seeds said about it.
    """

    name: str
    task: str
    stage: str
    expected_rule: str | None
    overrides: tuple[str, ...] = ()
    knobs: dict[str, Any] = field(default_factory=dict)
    truth: Callable[[History], bool] = lambda h: True
    seed_claim: str = ""


COMMON = ("fit.cpus_per_worker=0.5", "fit.batch_size=32")
ENTRIES: tuple[ZooEntry, ...] = (
    ZooEntry("inverted_bbox_loss", "concepts", "concepts", "inverted_localisation",
             ("loss.loc_mode=inverted", "loss.beta=2.0", "fit.epochs=4"),
             truth=lambda h: _last(h, "val/energy_ratio") <= 1.0,
             seed_claim="seed 001 believed its hinge was this bug; measured, the hinge is not inverted"),
    ZooEntry("seed_stage1_lrs", "concepts", "concepts", "not_learning",
             ("optim.lr=1e-4", "optim.backbone_lr_scale=0.01", "optim.head_lr_scale=0.2", "fit.epochs=4"),
             truth=lambda h: len(h) > 1 and _last(h, "val/auc_macro") - float(h[0]["val/auc_macro"]) < 0.02,
             seed_claim="seed 001: learning rates 100x too low kept stage 1 at AUC 0.50 (measured here: "
                        "stalled, not at chance; see the zoo output)"),
    ZooEntry("prototype_collapse", "concepts", "prototypes", "prototype_collapse",
             ("model.prototype_init=identical", "optim.lr=0.03", "optim.prototype_lr_scale=10", "fit.epochs=3"),
             truth=lambda h: max(_last(h, "val/prototype_similarity"), _last(h, "val/within_similarity")) > 0.8,
             seed_claim="seed 000/001: tau 0.1 may collapse prototypes (avg similarity > 0.8); measured: "
                        "tau 0.1 and even tau 0.01 with a 10x prototype lr do not, identical init does"),
    ZooEntry("seed003_broken_recipe", "grading", "grading", "class_collapse",
             ("loss.name=focal", "loss.focal_gamma=2.0", "loss.class_weight_power=1.5", "loss.class_weight_min=0.0",
              "loss.class_weight_max=1000000", "mixup_prob=0.5", "fit.batch_size=2", "sampler.balanced=true",
              "sampler.class_fractions=1,1,1,3", "fit.epochs=6",
              # With every rule on, exploding gradients (norm 151 at step 4, batch 2) fire
              # first; this entry isolates the class-collapse detector.
              "health.exploding_gradients.enabled=false"),
             truth=lambda h: _last(h, "val/f1_macro") < 0.5,
             seed_claim="seed 003: focal + heavy weights + batch 2 + MixUp gave F1 = 0 for two classes; "
                        "measured here with all rules on, exploding gradients fire first (step 4)"),
    ZooEntry("bce_on_empty_masks", "segmentation", "segmentation", "prediction_collapse",
             ("loss.name=bce", "fit.epochs=4"), knobs={"empty_mask_fraction": 0.95},
             truth=lambda h: _last(h, "val/pred_mean") < 0.01,
             seed_claim="seed 004: BCE alone on mostly empty masks drove the loss to 0 with all-zero predictions"),
    ZooEntry("lr_far_too_high", "grading", "grading", "exploding_gradients",
             ("optim.lr=1e4", "optim.name=sgd", "fit.grad_clip=0", "fit.epochs=3"),
             truth=lambda h: not all(math.isfinite(x.get("train/loss", math.nan)) for x in h) or len(h) < 3,
             seed_claim="a learning rate far too high"),
    ZooEntry("healthy_concepts", "concepts", "concepts", None, ("fit.epochs=4",)),
    ZooEntry("healthy_prototypes", "concepts", "prototypes", None, ("fit.epochs=3",)),
    ZooEntry("healthy_diagnosis", "concepts", "diagnosis", None, ("fit.epochs=3",)),
    ZooEntry("healthy_grading", "grading", "grading", None, ("fit.epochs=4",)),
    ZooEntry("healthy_segmentation", "segmentation", "segmentation", None, ("fit.epochs=4",)),
)
ROWS = {"concepts": 400, "grading": 400, "segmentation": 300}
SIZE = {"concepts": 48, "grading": 32, "segmentation": 32}


def _dataset(root: Path, task: str, knobs: dict[str, Any], data: dict[str, str]) -> str:
    from medsight_ray.data.synth import Knobs, synthesize

    if task in data and not knobs:
        return data[task]
    tag = "-".join(f"{k}{v}" for k, v in sorted(knobs.items())) or "clean"
    path = root / f"{task}-{tag}"
    if not (path / "train-00000.parquet").is_file():
        synthesize(task, path, rows=ROWS[task], image_size=SIZE[task], seed=0, knobs=Knobs(**knobs))
    return str(path)


def select_entries(names: tuple[str, ...] = ()) -> tuple[ZooEntry, ...]:
    """The entries named (all when ``names`` is empty), in zoo order.

    Raises:
        ConfigError: a name is not a zoo entry.
    """
    unknown = sorted(set(names) - {e.name for e in ENTRIES})
    if unknown:
        raise ConfigError("unknown zoo entry", where=f"--only {unknown[0]}",
                          expected=f"one of {[e.name for e in ENTRIES]}", got=", ".join(unknown))
    return tuple(e for e in ENTRIES if not names or e.name in names)


def check_configs(names: tuple[str, ...] = (), extra: tuple[str, ...] = ()) -> None:
    """Build every selected entry's config with ``extra`` (no Ray needed).

    Raises:
        ConfigError: an unknown entry, or an override that fits no entry's config.
    """
    from medsight_ray.stages.registry import get_stage

    for entry in select_entries(names):
        apply_overrides(get_stage(entry.task, entry.stage).config_cls(), [*COMMON, *entry.overrides, *extra])


def run_zoo(out: Path, data: dict[str, str] | None = None, verify: bool = False,
            names: tuple[str, ...] = (), extra: tuple[str, ...] = ()) -> list[dict[str, Any]]:
    """Run the zoo; returns one row per entry (also written to ``OUT/zoo.json``).
    ``extra`` overrides every entry's config after its own recipe.

    Raises:
        ConfigError: a name in ``names`` is not a zoo entry.
    """
    from medsight_ray.fit.runner import prepare_data, run_stage
    from medsight_ray.stages.registry import get_stage

    out.mkdir(parents=True, exist_ok=True)
    data = data or {}
    prerequisites: dict[tuple[str, int], str] = {}
    rows = []
    for entry in select_entries(names):
        stage = get_stage(entry.task, entry.stage)
        say(f"== zoo entry {entry.name}: {entry.task}/{entry.stage}, expects {entry.expected_rule or 'no diagnosis'}")
        uri = _dataset(out / "data", entry.task, entry.knobs, data)
        prepared = prepare_data(uri, entry.task)
        size = f"data.image_size={SIZE[entry.task]}" if entry.task not in data else "data.image_size=64"
        cfg = apply_overrides(stage.config_cls(), [*COMMON, size, *entry.overrides, *extra])
        init = _previous_stage(stage, uri, prepared, out, size, prerequisites) if stage.order > 1 else None
        truth = None
        if verify and entry.expected_rule:
            off = apply_overrides(cfg, ["health.enabled=false"])
            plain = run_stage(stage, off, prepared, str(out / "ray"), f"{entry.name}-truth", init)
            truth = bool(entry.truth(plain.history)) if plain.history else entry.expected_rule == "non_finite"
        result = run_stage(stage, cfg, prepared, str(out / "ray"), entry.name, init)
        outcome = result.outcome
        fatal = [d for d in outcome.diagnoses if d.get("severity") == "fatal"]
        first = min(fatal or outcome.diagnoses, key=lambda d: (d["epoch"], d["step"]), default=None)
        rows.append({"name": entry.name, "stage": f"{entry.task}/{entry.stage}", "expected_rule": entry.expected_rule,
                     "detected_rule": first["rule"] if first else None, "epoch": first["epoch"] if first else None,
                     "stopped": outcome.stop_reason == "health", "stop_epoch": outcome.stop_epoch,
                     "stop_step": outcome.stop_step, "diagnoses": len(outcome.diagnoses),
                     "pathology_verified": truth, "epochs_run": outcome.epochs_run, "seed_claim": entry.seed_claim,
                     "final_metric": result.final.get(f"val/{stage.primary_metric}")})
        (out / "zoo.json").write_text(json.dumps(rows, indent=2, default=str))
    return rows


def _previous_stage(stage: Any, uri: str, data: Any, out: Path, size: str,
                    cache: dict[tuple[str, int], str]) -> str:
    """Checkpoint of a healthy run of every earlier stage of ``stage``'s task (cached)."""
    from medsight_ray.fit.runner import run_stage
    from medsight_ray.stages.registry import pipeline

    checkpoint = None
    for earlier in pipeline(stage.task)[: stage.order - 1]:
        key = (uri, earlier.order)
        if key not in cache:
            cfg = apply_overrides(earlier.config_cls(), [*COMMON, size, "fit.epochs=4"])
            result = run_stage(earlier, cfg, data, str(out / "ray"), f"prereq-{earlier.name}", checkpoint)
            cache[key] = result.checkpoint
        checkpoint = cache[key]
    return checkpoint


def format_table(rows: list[dict[str, Any]]) -> str:
    """The zoo as a text table."""
    head = f"{'entry':<24} {'expected':<24} {'detected':<24} {'epoch':>5} {'stopped':>7} {'verified':>8}"
    lines = [head, "-" * len(head)]
    for r in rows:
        lines.append(f"{r['name']:<24} {str(r['expected_rule']):<24} {str(r['detected_rule']):<24} "
                     f"{str(r['epoch'] or '-'):>5} {str(r['stopped']):>7} {str(r['pathology_verified']):>8}")
    return "\n".join(lines)
