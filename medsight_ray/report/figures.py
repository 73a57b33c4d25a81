"""Report figures (PNG, matplotlib Agg): metric curves coloured by health and a health
timeline of which rule fired when."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from medsight_ray.report.summary import HEALTH_COLOURS, health_class


def _pyplot() -> Any:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _legend(ax: Any, classes: set[str]) -> None:
    from matplotlib.lines import Line2D

    handles = [Line2D([0], [0], color=HEALTH_COLOURS[c], lw=2, label=c) for c in HEALTH_COLOURS if c in classes]
    if handles:
        ax.legend(handles=handles, fontsize=7, loc="best")


def metric_curves(section: dict[str, Any], path: Path) -> Path:
    """Per trial: the primary validation metric (higher is better) and the train loss
    (lower is better) by epoch, each line coloured by the trial's health class."""
    plt = _pyplot()
    key = section["primary_metric"]
    fig, (left, right) = plt.subplots(1, 2, figsize=(10, 3.6))
    seen = set()
    for trial in section["trials"]:
        cls = health_class(trial)
        seen.add(cls)
        rows = [h for h in trial.get("history", []) if "epoch" in h]
        epochs = [h["epoch"] for h in rows]
        for ax, metric in ((left, key), (right, "train/loss")):
            values = [h.get(metric, float("nan")) for h in rows]
            ax.plot(epochs, values, marker="o", ms=3, color=HEALTH_COLOURS[cls], alpha=0.85)
            if values:
                ax.annotate(trial["trial_id"][:8], (epochs[-1], values[-1]), fontsize=6)
    left.set(title=f"{section['stage']}: {key} (higher is better)", xlabel="epoch", ylabel=key)
    right.set(title="train loss (lower is better)", xlabel="epoch", ylabel="train/loss")
    right.set_yscale("log")  # losses span orders of magnitude when a trial diverges
    _legend(left, seen)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def health_timeline(sections: list[dict[str, Any]], path: Path) -> Path:
    """One row per trial across every stage: a bar over the epochs it ran, coloured by its
    health class, with each diagnosis marked at its epoch (x = fatal, ^ = warning)."""
    plt = _pyplot()
    rows = [(s["stage"], t) for s in sections for t in s["trials"]]
    fig, ax = plt.subplots(figsize=(10, 0.35 * len(rows) + 1.2))
    seen = set()
    for y, (_, trial) in enumerate(rows):
        cls = health_class(trial)
        seen.add(cls)
        ax.barh(y, max(trial["epochs_run"], 0.05), left=0.5, color=HEALTH_COLOURS[cls], alpha=0.35, height=0.6)
        for diag in trial.get("diagnoses", []):
            fatal = diag.get("severity") == "fatal"
            ax.plot(diag.get("epoch", 0), y, "x" if fatal else "^", color="#d62728" if fatal else "#ff7f0e", ms=8)
            ax.annotate(diag["rule"], (diag.get("epoch", 0), y), xytext=(5, -3), textcoords="offset points",
                        fontsize=7)
    # A remedy trial is linked to the trial whose diagnosis it answers: an arrow from that
    # trial's stop to the remedy's row, and "<- parent" in its label.
    row_of = {t["trial_id"]: y for y, (_, t) in enumerate(rows)}
    for y, (_, trial) in enumerate(rows):
        lineage = trial.get("lineage") or {}
        if lineage.get("parent") in row_of:
            ax.annotate("", xy=(0.5, y), xytext=(lineage.get("epoch", 1), row_of[lineage["parent"]]),
                        arrowprops={"arrowstyle": "->", "color": "#1f77b4", "lw": 1})
    labels = [f"{stage.split('/')[-1]} {t['trial_id'][:8]}"
              + (f" <- {t['lineage']['parent'][:8]}" if t.get("lineage") else "") for stage, t in rows]
    ax.set_yticks(range(len(rows)), labels, fontsize=7)
    ax.invert_yaxis()
    ax.set(xlabel="epoch", title="health timeline: which rule fired when")
    _legend(ax, seen)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def importance_bars(stage: str, importances: dict[str, float], path: Path) -> Path:
    """Horizontal bars of Optuna's parameter importances (sum to 1)."""
    plt = _pyplot()
    names = list(importances)[::-1]
    fig, ax = plt.subplots(figsize=(6, 0.4 * len(names) + 1))
    ax.barh(names, [importances[n] for n in names], color="#1f77b4")
    ax.set(xlabel="importance (fANOVA, sums to 1)", title=f"{stage}: hyperparameter importance")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path
