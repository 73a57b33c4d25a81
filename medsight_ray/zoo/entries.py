"""The pathology zoo: named, reproducible failures, each a recipe a user could write.

Each entry is one stage run. Its cause is a setting a user could choose, a fault in
the data (rewritten into a copy, :mod:`medsight_ray.zoo.datafaults`), or a bug in
someone's code (a stage subclass, :mod:`medsight_ray.zoo.faults`); never a product
setting that exists only to fail. Each entry trains once with every rule on and none
fatal, so the monitor watches and never acts: ``truth``, the ground truth, is checked
on that run's metric history to its end, by a criterion that is not the detecting
rule's own (for most, another metric altogether), and the run records every rule that
fired, in order, and where the fatal ones would have stopped it. Healthy default configs
run beside them, and must raise nothing.
"""

from __future__ import annotations

import json
import math
import shutil
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from medsight_ray import atomicfile
from medsight_ray.config import apply_overrides
from medsight_ray.console import say
from medsight_ray.errors import ConfigError
from medsight_ray.health.rules import ALL_RULES

History = list[dict[str, Any]]


def _series(history: History, key: str) -> list[float]:
    return [float(h[key]) for h in history if isinstance(h.get(key), (int, float)) and math.isfinite(h[key])]


def _last(history: History, key: str) -> float:
    values = _series(history, key)
    return values[-1] if values else float("nan")


def _fell(history: History, key: str, fraction: float) -> bool:
    """The last value of ``key`` is below ``fraction`` × its first."""
    values = _series(history, key)
    return len(values) > 1 and values[-1] < fraction * values[0]


def _best(history: History, key: str) -> float:
    values = _series(history, key)
    return max(values) if values else float("nan")


def _below_majority(entry: dict[str, Any]) -> bool:
    """The epoch's validation accuracy below the majority class's share of the split."""
    support, accuracy = entry.get("details", {}).get("support"), entry.get("val/accuracy")
    if not isinstance(support, dict) or not sum(support.values()) or not isinstance(accuracy, (int, float)):
        return False
    return accuracy < max(support.values()) / sum(support.values())


def _overfit(history: History, drop: float, epochs: int) -> bool:
    """The primary metric (``objective``) stood at least ``drop`` below its best in each
    of the last ``epochs`` epochs, while the train loss in each was below half its value
    at the best epoch: the model fits its training images better and generalises worse."""
    objective, train = _series(history, "objective"), _series(history, "train/loss")
    if len(objective) != len(history) or len(train) != len(history) or len(history) <= epochs:
        return False
    best = max(range(len(objective)), key=objective.__getitem__)
    return best < len(history) - epochs and all(
        objective[i] <= objective[best] - drop and train[i] < 0.5 * train[best]
        for i in range(len(history) - epochs, len(history)))


@dataclass(frozen=True)
class ZooEntry:
    """One failure recipe (or a healthy control).

    Attributes:
        name: entry name.
        task, stage: what it trains.
        causes: the rules that name a correct cause (the first fatal rule must be one of
            them); empty for a healthy control.
        overrides: config overrides of the recipe (settings a user could write).
        knobs: synthetic-data knobs of the entry's own dataset.
        truth: the pathology, measured on the metric history of a run with the monitor
            off; True when it is there. The entry is verified when it holds on the whole
            run; its onset is where it began to hold for good (:func:`onset`).
        fault: a stage class in :mod:`medsight_ray.zoo.faults` to train instead of the
            product's stage (a bug in someone's code).
        earlier_fault: the same, for the earlier stage this one starts from.
        data_fault: a rewrite in :mod:`medsight_ray.zoo.datafaults` applied to a copy of
            the data.
        real: the real dataset the entry also runs on (``digits`` or ``nuclei``), if any.
        detectable: False for a fault the training signals cannot show (a consistent
            data fault the model simply learns); it runs and is reported, measured, but
            the zoo does not expect a diagnosis and its verdict does not count.
        rows: rows of the entry's synthetic dataset (default: the task's size).
        val_fraction: the share of those rows held out for validation.
        seed_claim: what the seeds said about it, and what was measured.
    """

    name: str
    task: str
    stage: str
    causes: tuple[str, ...] = ()
    overrides: tuple[str, ...] = ()
    knobs: dict[str, Any] = field(default_factory=dict)
    truth: Callable[[History], bool] = lambda h: False
    fault: str | None = None
    earlier_fault: str | None = None
    data_fault: str | None = None
    real: str | None = None
    detectable: bool = True
    rows: int | None = None
    val_fraction: float = 0.2
    seed_claim: str = ""


LR_CAUSES = ("non_finite", "exploding_gradients", "oversized_updates", "dead_outputs", "diverging_loss")
COMMON = ("fit.cpus_per_worker=0.5", "fit.batch_size=32")
ENTRIES: tuple[ZooEntry, ...] = (
    ZooEntry("sign_flipped_bbox_loss", "concepts", "concepts", ("inverted_localisation",),
             ("loss.beta=2.0", "fit.epochs=4"), fault="SignFlippedBoxLoss",
             # The CAM's peak is almost never in the box (an untrained model's: 0.36, measured).
             truth=lambda h: _last(h, "val/pointing") < 0.1,
             seed_claim="seed 001 believed its hinge was a flipped sign; measured, the hinge is not; a truly "
                        "flipped loss (a bug in code) is injected here"),
    ZooEntry("seed_stage1_lrs", "concepts", "concepts", ("not_learning", "chance_metric", "vanishing_gradients"),
             ("optim.lr=1e-4", "optim.backbone_lr_scale=0.01", "optim.head_lr_scale=0.2", "fit.epochs=4"),
             # The default recipe reaches AUC 0.87 by epoch 3 on this data (measured).
             truth=lambda h: len(h) > 2 and _best(h, "val/auc_macro") < 0.75,
             seed_claim="seed 001: learning rates 100x too low kept stage 1 at AUC 0.50 (measured here: "
                        "stalled near AUC 0.67, not at chance)"),
    ZooEntry("identical_prototypes", "concepts", "prototypes", ("prototype_collapse",),
             ("fit.epochs=3",), fault="IdenticalPrototypes",
             truth=lambda h: _last(h, "val/within_similarity") > 0.99,
             seed_claim="seed 000/001: tau 0.1 may collapse prototypes. Measured: tau 0.1, and tau 0.01 with a "
                        "10x prototype lr, keep the prototypes apart (within-concept cosine 0.004-0.006 over 5 "
                        "epochs): no natural cause was found, so a bad initialiser is injected and the rule "
                        "stays as a defence"),
    ZooEntry("seed003_broken_recipe", "grading", "grading", ("class_collapse", "exploding_gradients", "non_finite"),
             ("loss.name=focal", "loss.focal_gamma=2.0", "loss.class_weight_power=1.5", "loss.class_weight_min=0.0",
              "loss.class_weight_max=1000000", "mixup_prob=0.5", "fit.batch_size=2", "sampler.balanced=true",
              "sampler.class_fractions=1,1,1,3", "fit.epochs=6"),
             # Worse than answering the majority class for every image, 2 epochs running
             # (measured, monitor off: accuracy 0.33-0.38 against a 0.44 majority, the
             # majority class never predicted, while macro F1 0.27-0.29 beat the best
             # constant class's 0.15).
             truth=lambda h: len(h) > 1 and all(_below_majority(x) for x in h[-2:]),
             real="digits",
             seed_claim="seed 003: focal + weights to 1e6 + batch 2 + MixUp gave F1 = 0 for two classes"),
    ZooEntry("minority_never_predicted", "grading", "grading", ("class_collapse",),
             ("sampler.balanced=true", "sampler.class_fractions=1,1,1,0", "fit.epochs=7"),
             # The worst class's F1 stays 0 for the last 3 epochs of at least 5.
             truth=lambda h: len(h) >= 5 and max(_series(h, "val/f1_min")[-3:] or [1.0]) == 0.0,
             seed_claim="a sampler told to draw one class (13 %) zero times: it is never predicted. Measured: "
                        "an unweighted loss on a 62/30/5/3 % split is not enough here (the 3 % class reaches "
                        "F1 0.57 by epoch 3)"),
    ZooEntry("bce_on_empty_masks", "segmentation", "segmentation", ("prediction_collapse", "loss_falls_metric_flat"),
             ("loss.name=bce", "fit.epochs=4"), knobs={"empty_mask_fraction": 0.95},
             # Half the rows held out: at 300 rows and a 0.2 split, data seed 1's 56 validation
             # masks were all empty (measured), so Dice was 0/0 in every epoch, and the data
             # check now refuses such a split. Here data seeds 0-4 have 5-17 masks with
             # foreground in validation, and 6-15 in training, as before. The collapse needs
             # that few: on 500 rows and a 0.3 split (18 in training) BCE alone reached
             # Dice 0.63 in 4 epochs (measured, data seed 0).
             rows=400, val_fraction=0.5,
             # Nothing predicted while the loss rewards it: Dice under 0.1 with the train
             # loss below half the first epoch's. Dice alone also holds at epoch 1 of
             # healthy runs, before anything is learned (measured: real nuclei Dice 0.0,
             # weak signal 0.002), so it cannot date the collapse's onset.
             truth=lambda h: _last(h, "val/dice") < 0.1 and _fell(h, "train/loss", 0.5),
             seed_claim="seed 004: BCE alone on mostly empty masks drove the loss to 0 with all-zero predictions"),
    ZooEntry("lr_far_too_high", "grading", "grading", LR_CAUSES,
             ("optim.lr=1e4", "optim.name=sgd", "fit.grad_clip=0", "fit.epochs=3"),
             truth=lambda h: not all(math.isfinite(x.get("train/loss", math.nan)) for x in h) or len(h) < 3
             or _last(h, "val/f1_macro") < 0.3,
             seed_claim="a learning rate far too high"),
    ZooEntry("outputs_died_lr_1", "concepts", "concepts", LR_CAUSES,
             ("optim.lr=1.0", "fit.epochs=3"),
             # The default recipe is at AUC 0.80 after one epoch on this data (measured).
             truth=lambda h: _best(h, "val/auc_macro") < 0.6,
             seed_claim="the demo's lr = 1.0 trial: AUC 0.36 at epoch 1, outputs constant, CAMs dark"),
    ZooEntry("swapped_box_xy", "concepts", "concepts", ("inverted_localisation",),
             ("loss.beta=2.0", "fit.epochs=4"), data_fault="swap_box_xy", detectable=False,
             # The CAM's peak is almost never in the box (an untrained model's: 0.36, measured).
             truth=lambda h: _last(h, "val/pointing") < 0.1,
             seed_claim="boxes with x and y swapped at import. Measured: the model learns the concepts (AUC "
                        "0.80) and pulls its CAMs partly into the swapped boxes (energy ratio 1.15 > 1, pointing "
                        "0.18): nothing in the training signals is inverted or stalled"),
    ZooEntry("shifted_masks", "segmentation", "segmentation",
             ("chance_metric", "not_learning", "loss_falls_metric_flat", "prediction_collapse"),
             ("fit.epochs=6",), data_fault="shift_masks", real="nuclei", detectable=False,
             # The default recipe reaches Dice 0.80 by epoch 3 on this data (measured).
             truth=lambda h: len(h) >= 4 and _best(h, "val/dice") < 0.4,
             seed_claim="masks shifted a quarter of the image against their images. Measured: a consistent "
                        "shift is learnable; Dice climbs 0.0 -> 0.48 by epoch 6 (0.85 by epoch 4 when aligned), "
                        "a slow learner, not a stalled one"),
    ZooEntry("rows_grouped_by_class", "grading", "grading",
             ("unmixed_batches", "diverging_loss", "class_collapse", "not_learning", "chance_metric"),
             ("fit.epochs=4", "fit.shuffle_buffer=16"), data_fault="group_by_label", real="digits",
             truth=lambda h: len(h) > 1 and _best(h, "val/f1_macro") < 0.5,
             seed_claim="a user's own parquet with rows grouped by class (the importers now shuffle)"),
    ZooEntry("diagnosis_on_collapsed_prototypes", "concepts", "diagnosis", ("prototype_collapse", "chance_metric",
             "not_learning", "class_collapse"), ("fit.epochs=3",), earlier_fault="IdenticalPrototypes",
             detectable=False,
             truth=lambda h: _best(h, "val/auc_macro") < 0.6,
             seed_claim="stage 3 trained on a collapsed stage 2. Measured: disease AUC 0.73, as on a healthy "
                        "stage 2 (0.73): stage 3 reads the concept logits too, and loses nothing measurable"),
    ZooEntry("overfitting_noisy_labels", "grading", "grading", ("overfitting",),
             # At 64 px: at 32 px this backbone's eval-mode outputs on 200 images swing onto
             # one class for whole epochs (measured), a collapse that hides the overfitting.
             ("fit.epochs=30", "data.image_size=64", "loss.label_smoothing=0", "data.hflip=0", "data.intensity=0"),
             knobs={"label_noise": 0.3}, val_fraction=0.5,
             # The harm, read off the metric and the train loss, not the validation loss the
             # rule reads: the last 3 epochs' F1 all >= 0.05 below its best, while the train
             # loss stands below half its value at the best epoch (the train set memorised).
             truth=lambda h: _overfit(h, drop=0.05, epochs=3),
             seed_claim="200 training images, 30 % of their labels wrong, no augmentation or label smoothing, "
                        "30 epochs: the model learns (F1 0.64 by epoch 7), then memorises the wrong labels "
                        "(train loss 0.75 -> 0.03, validation loss 1.05 -> 1.80, F1 0.55)"),
    ZooEntry("healthy_concepts", "concepts", "concepts", (), ("fit.epochs=4",)),
    ZooEntry("healthy_prototypes", "concepts", "prototypes", (), ("fit.epochs=3",)),
    ZooEntry("healthy_diagnosis", "concepts", "diagnosis", (), ("fit.epochs=3",)),
    ZooEntry("healthy_grading", "grading", "grading", (), ("fit.epochs=4",), real="digits"),
    ZooEntry("healthy_segmentation", "segmentation", "segmentation", (), ("fit.epochs=4",), real="nuclei"),
)
ROWS = {"concepts": 400, "grading": 400, "segmentation": 300}
SIZE = {"concepts": 48, "grading": 32, "segmentation": 32}


def dataset_for(root: Path, entry: ZooEntry, data_seed: int = 0, base: str | None = None,
                knobs: dict[str, Any] | None = None) -> str:
    """The entry's dataset under ``root``: ``base`` (the user's or a real dataset) or a
    synthetic one from ``data_seed`` and the entry's knobs (with ``knobs`` on top), with
    the entry's data fault applied to a copy. Cached by name."""
    from medsight_ray.data.synth import Knobs, synthesize
    from medsight_ray.zoo.datafaults import FAULTS

    all_knobs = {**entry.knobs, **(knobs or {})}
    if base is None:
        tag = "-".join(f"{k}{v}" for k, v in sorted(all_knobs.items())) or "clean"
        rows = entry.rows or ROWS[entry.task]
        path = root / f"{entry.task}-{tag}-r{rows}-v{entry.val_fraction:g}-s{data_seed}"
        if not (path / "train-00000.parquet").is_file():
            synthesize(entry.task, path, rows=rows, image_size=SIZE[entry.task], seed=data_seed,
                       knobs=Knobs(**all_knobs), val_fraction=entry.val_fraction)
        base = str(path)
    if entry.data_fault is None:
        return base
    faulty = root / f"{Path(base).name}-{entry.data_fault}"
    if not (faulty / "train-00000.parquet").is_file():
        FAULTS[entry.data_fault](Path(base), faulty)
    return str(faulty)


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


def stage_of(entry: ZooEntry) -> Any:
    """The stage the entry trains: the product's, or the zoo's faulty subclass."""
    from medsight_ray.stages.registry import get_stage
    from medsight_ray.zoo import faults

    return getattr(faults, entry.fault)() if entry.fault else get_stage(entry.task, entry.stage)


def entry_config(entry: ZooEntry, extra: tuple[str, ...] = (), image_size: int | None = None) -> Any:
    """The entry's config: stage defaults, the zoo's common settings, the image size,
    the recipe, then ``extra``."""
    size = f"data.image_size={image_size or SIZE[entry.task]}"
    return apply_overrides(stage_of(entry).config_cls(), [*COMMON, size, *entry.overrides, *extra])


def check_configs(names: tuple[str, ...] = (), extra: tuple[str, ...] = ()) -> None:
    """Build every selected entry's config with ``extra`` (no Ray needed).

    Raises:
        ConfigError: an unknown entry, or an override that fits no entry's config.
    """
    for entry in select_entries(names):
        entry_config(entry, extra)


def onset(entry: ZooEntry, history: History) -> int | None:
    """The pathology's onset on a run the monitor only watched: the first epoch (1-based)
    from which the entry's ground truth holds on every longer prefix of the history,
    through the end; None when it does not hold at the end. A run that heals itself had
    nothing worth stopping: every segmentation net predicts no foreground at first,
    and one that went on to Dice 0.61 by itself is not seed 004's collapse."""
    if not history or not entry.truth(history):
        return None
    epoch = len(history)
    while epoch > 1 and entry.truth(history[:epoch - 1]):
        epoch -= 1
    return epoch


def fired_rules(diagnoses: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Every diagnosis in the order it was made: rule, severity, epoch, step, evidence."""
    ordered = sorted(diagnoses, key=lambda d: (d["epoch"], d["step"] == 0, d["step"]))
    return [{"rule": d["rule"], "severity": d["severity"], "epoch": d["epoch"], "step": d["step"],
             "evidence": d.get("evidence") or {}} for d in ordered]


def would_stop(cfg: Any) -> Callable[[dict[str, Any]], bool]:
    """Would a diagnosis (its rule and evidence) have stopped a run of config ``cfg``:
    its rule is fatal there and its evidence lets it stop (:meth:`Rule.stops
    <medsight_ray.health.rule.Rule.stops>`), as the monitor decides."""
    from medsight_ray.health.rule import stops_run
    from medsight_ray.health.rules import REGISTRY

    return lambda d: stops_run(REGISTRY[d["rule"]], getattr(cfg.health, d["rule"]), d.get("evidence") or {}, cfg)


def product_stop(fired: list[dict[str, Any]], fatal: Callable[[dict[str, Any]], bool]) -> list[dict[str, Any]]:
    """What the monitor would have recorded had its fatal rules stopped the run, from
    the diagnoses of a run in which every rule only warned (``fired``, in order). The
    run is deterministic and the monitor only watches, so a stopped run is this run cut
    at its first diagnosis by a rule that is ``fatal``. Kept: every diagnosis before
    it; with it, the rest of that epoch's verdicts when it is an epoch rule, or that
    epoch's step rules up to its step when it is a step rule (the epoch halts there
    and its epoch rules are not judged). Severities are the ones ``fatal`` (of each
    diagnosis: :func:`would_stop`) gives."""
    stamped = [{**d, "severity": "fatal" if fatal(d) else "warn"} for d in fired]
    first = next((d for d in stamped if d["severity"] == "fatal"), None)
    if first is None:
        return stamped
    epoch, step = first["epoch"], first["step"]
    return [d for d in stamped if d["epoch"] < epoch
            or (d["epoch"] == epoch and (not step or (d["step"] and d["step"] <= step)))]


#: ``--set`` overrides that keep every rule on but make none fatal: a run that trains
#: to its end, with each diagnosis where the rules would have stopped it.
WARN_ONLY: tuple[str, ...] = tuple(f"health.{rule}.fatal=false" for rule in ALL_RULES)


def warn_only(cfg: Any) -> Any:
    """``cfg`` with every rule on but none fatal."""
    return apply_overrides(cfg, WARN_ONLY)


def run_entry(entry: ZooEntry, out: Path, data: str, *, verify: bool = False, extra: tuple[str, ...] = (),
              image_size: int | None = None, label: str = "", cache: dict[tuple[str, int], str] | None = None,
              ) -> dict[str, Any]:
    """Run one entry on dataset ``data``; returns its row: every rule that fired, the
    first fatal one and whether it names a correct cause, the stop, and (when
    ``verify``) the ground truth and its onset.

    The entry trains once, with every rule on and none fatal, so the monitor only
    watches: its history is a monitor-off run's, and the ground truth is measured on
    it to the end. The stop is where the fatal rules of the entry's config would have
    made it (:func:`product_stop`); a fatal rule's stop itself is tested end to end in
    the test suite."""
    from medsight_ray.fit.runner import prepare_data, run_stage

    stage = stage_of(entry)
    prepared = prepare_data(data, entry.task)
    cfg = entry_config(entry, extra, image_size)
    name = f"{entry.name}{label}"
    init = (_previous_stage(entry, data, prepared, out, cfg, {} if cache is None else cache)
            if stage.order > 1 else None)
    result = run_stage(stage, warn_only(cfg), prepared, str(out / "ray"), name, init)
    fired = product_stop(fired_rules(result.outcome.diagnoses), would_stop(cfg))
    fatal = [d for d in fired if d["severity"] == "fatal"]
    first = fatal[0] if fatal else None
    truth, first_onset = None, None
    if verify and entry.causes:
        # Verified when the ground truth holds at the end of the run.
        first_onset = onset(entry, result.history) if result.history else 1
        truth = first_onset is not None
    epochs_run = first["epoch"] if first else result.outcome.epochs_run
    shown = result.history[epochs_run - 1] if 0 < epochs_run <= len(result.history) else result.final
    return {"name": entry.name, "label": label, "stage": f"{entry.task}/{entry.stage}", "data": data,
            "causes": list(entry.causes), "fired": fired,
            "first_fatal": first["rule"] if first else None, "first_fatal_epoch": first["epoch"] if first else None,
            "first_fatal_step": first["step"] if first else None,
            "detectable": entry.detectable,
            "correct_cause": (first is not None and first["rule"] in entry.causes) if entry.causes else not fired,
            "stopped": first is not None, "stop_epoch": first["epoch"] if first else None,
            "stop_step": first["step"] if first else None, "epochs_run": epochs_run,
            "pathology_verified": truth, "onset_epoch": first_onset,
            "steps_per_epoch": result.history[0].get("train/steps") if result.history else None,
            "final_metric": shown.get(f"val/{stage.primary_metric}"), "seed_claim": entry.seed_claim}


def run_zoo(out: Path, data: dict[str, str] | None = None, verify: bool = False,
            names: tuple[str, ...] = (), extra: tuple[str, ...] = ()) -> list[dict[str, Any]]:
    """Run the zoo; returns one row per entry (also written to ``OUT/zoo.json``).
    ``data`` (task → dataset) replaces the synthetic data of the healthy entries of its
    task; ``extra`` overrides every entry's config after its own recipe.

    Raises:
        ConfigError: a name in ``names`` is not a zoo entry.
    """
    out.mkdir(parents=True, exist_ok=True)
    # Ray Train resumes a run whose name it finds in storage: a zoo run starts over.
    shutil.rmtree(out / "ray", ignore_errors=True)
    data = data or {}
    cache: dict[tuple[str, int], str] = {}
    rows = []
    for entry in select_entries(names):
        say(f"== zoo entry {entry.name}: {entry.task}/{entry.stage}, "
            f"expects {' or '.join(entry.causes) or 'no diagnosis'}")
        own = data.get(entry.task) if not entry.causes else None
        uri = dataset_for(out / "data", entry, base=own)
        rows.append(run_entry(entry, out, uri, verify=verify, extra=extra, image_size=64 if own else None,
                              cache=cache))
        atomicfile.write_text(out / "zoo.json", json.dumps(rows, indent=2, default=str))
    return rows


def _previous_stage(entry: ZooEntry, uri: str, data: Any, out: Path, cfg: Any,
                    cache: dict[tuple[str, int], str]) -> str:
    """Checkpoint of every earlier stage of the entry's stage, trained with its default
    recipe (the last one with the entry's ``earlier_fault``); cached per dataset."""
    from medsight_ray.fit.runner import run_stage
    from medsight_ray.stages.registry import get_stage, pipeline
    from medsight_ray.zoo import faults

    stage = get_stage(entry.task, entry.stage)
    earlier_stages = pipeline(stage.task)[: stage.order - 1]
    checkpoint = None
    for earlier in earlier_stages:
        fault = entry.earlier_fault if earlier is earlier_stages[-1] else None
        key = (f"{uri}|{fault}|{cfg.fit.seed}", earlier.order)
        if key not in cache:
            runnable = getattr(faults, fault)() if fault else earlier
            earlier_cfg = apply_overrides(earlier.config_cls(), [*COMMON, f"data.image_size={cfg.data.image_size}",
                                                                 f"fit.seed={cfg.fit.seed}", "fit.epochs=4"])
            result = run_stage(runnable, earlier_cfg, data, str(out / "ray"), f"prereq-{earlier.name}", checkpoint)
            cache[key] = result.checkpoint
        checkpoint = cache[key]
    return checkpoint


def format_table(rows: list[dict[str, Any]]) -> str:
    """The zoo as a text table: every rule that fired, in order, at epoch:step."""
    head = f"{'entry':<34} {'first fatal':<22} {'ok':>3} {'stopped':>7} {'truth':>5}  fired (rule@epoch:step)"
    lines = [head, "-" * len(head)]
    for r in rows:
        fired = ", ".join(f"{d['rule']}@{d['epoch']}:{d['step']}" for d in r["fired"]) or "-"
        lines.append(f"{r['name'] + r.get('label', ''):<34} {str(r['first_fatal']):<22} "
                     f"{'yes' if r['correct_cause'] else 'NO':>3} {str(r['stopped']):>7} "
                     f"{str(r['pathology_verified']):>5}  {fired}")
    return "\n".join(lines)
