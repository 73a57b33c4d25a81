"""Re-judge recorded runs with the current epoch rules, without training again.

    python bench/replay_health.py [--work bench/results/detection/work] [--match TEXT]

The epoch rules are functions of the per-epoch history, so a run's ``history.json``
(its latest checkpoint's) can be fed to a fresh :class:`HealthMonitor` epoch by epoch.
This answers "what would the new rules have said on these runs" in seconds, where a
rerun of ``bench/detection.py`` takes hours. Its limits, and why it does not replace the
rerun: the step rules see only each epoch's mean gradient norm (the per-step values are
not recorded), a run the old rules stopped has only the epochs it ran, and signals that
older records lack (``val/loss_se``) are absent, so rules that read them fall back to
their plain form. Prints one line per run whose verdict is not empty, and a count.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from medsight_ray.fit.checkpoint import HISTORY_FILE, read_history
from medsight_ray.health.config import HealthConfig
from medsight_ray.health.monitor import HealthMonitor


def latest_history(run: Path) -> list[dict[str, Any]] | None:
    """The history of the run's newest checkpoint under ``run``, or None."""
    files = sorted(run.rglob(HISTORY_FILE), key=lambda p: p.stat().st_mtime)
    return read_history(files[-1].parent) if files else None


def feed(monitor: HealthMonitor, history: list[dict[str, Any]]) -> None:
    """Feed a recorded ``history`` (flat per-epoch entries, as ``history.json`` keeps them)
    to ``monitor`` epoch by epoch, as the fit loop does: the epoch's optimiser steps (each
    at the epoch's mean loss and gradient norm; one where a record lacks the count),
    then its train signals and validation metrics."""
    for epoch, entry in enumerate(history):
        train = {k: v for k, v in entry.items() if k.startswith(("train/", "fit/"))}
        metrics = {k[4:]: v for k, v in entry.items() if k.startswith("val/")}
        metrics.update({k: v for k, v in (entry.get("details") or {}).items() if k != "diagnoses"})
        monitor.begin_epoch(epoch)
        for _ in range(int(train.get("train/steps", 1))):
            monitor.on_step(float(train.get("train/loss", 1.0)), float(train.get("train/grad_norm", 1.0)))
        monitor.on_epoch(epoch, train, metrics)


def replay(history: list[dict[str, Any]]) -> list[tuple[str, int, str]]:
    """Every (rule, epoch, severity) the current rules fire on ``history``."""
    # The primary metric is the one the objective reports (a stopped epoch reports 0).
    primary = next((k[4:] for e in history for k, v in e.items()
                    if k.startswith("val/") and e.get("objective") and v == e["objective"]), "auc_macro")
    monitor = HealthMonitor(HealthConfig(), "replay", primary)
    feed(monitor, history)
    return [(d.rule, d.epoch, d.severity) for d in monitor.diagnoses]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--work", default="bench/results/detection/work")
    parser.add_argument("--match", default="", help="only runs whose directory name contains this text")
    args = parser.parse_args()
    runs = sorted(p for p in Path(args.work).iterdir() if p.is_dir() and args.match in p.name)
    judged, flagged = 0, 0
    for run in runs:
        trials = sorted((run / "train").glob("train-*")) if (run / "train").is_dir() else [run]
        for trial in trials:
            history = latest_history(trial)
            if not history:
                continue
            judged += 1
            fired = replay(history)
            if fired:
                flagged += 1
                name = run.name if trial is run else f"{run.name}/{trial.name}"
                print(f"{name}: " + ", ".join(f"{r}@{e} ({s})" for r, e, s in fired))
    print(f"{flagged} of {judged} recorded runs draw a diagnosis from the current rules")


if __name__ == "__main__":
    main()
