"""Report figures (PNG, matplotlib Agg): metric curves coloured by health and a health
timeline of which rule fired when."""

from __future__ import annotations

import math
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


def _labels_apart(ax: Any, labels: list[tuple[str, float, float]], fontsize: float) -> None:
    """Annotate each ``(text, x, y)`` point of ``ax`` so that no two labels overlap.

    Labels of one point are joined into one ("a1b2, c3d4": trials of one config that end
    alike). The x range widens until every label ends inside the axes. Then, top to
    bottom on the drawn figure, a label that would overlap one already placed moves down
    just below it: a stack beside the points, every label readable. Call after the
    figure's layout is final (the extents are measured on it).
    """
    grouped: dict[tuple[float, float], list[str]] = {}
    for text, x, y in labels:
        if math.isfinite(x) and math.isfinite(y) and text not in grouped.setdefault((x, y), []):
            grouped[(x, y)].append(text)
    texts = [ax.annotate(", ".join(names), point, xytext=(4, 0), textcoords="offset points", fontsize=fontsize,
                         va="center") for point, names in grouped.items()]
    fig = ax.figure
    renderer = fig.canvas.get_renderer()
    # Room on the right for the labels of the last points: widen the x range until the
    # widest label ends inside the axes (a few passes: widening moves every point).
    for _ in range(4):
        right = ax.get_window_extent(renderer).x1
        over = max((t.get_window_extent(renderer).x1 - right for t in texts), default=0.0)
        if over <= 0:
            break
        low, high = ax.get_xlim()
        ax.set_xlim(low, high + (high - low) * (over + 2) / ax.get_window_extent(renderer).width)
    placed: list[Any] = []
    points_per_pixel = 72.0 / fig.dpi
    for text in sorted(texts, key=lambda t: -t.get_window_extent(renderer).y1):
        for _ in range(len(texts)):
            box = text.get_window_extent(renderer)
            clash = next((b for b in placed if box.overlaps(b)), None)
            if clash is None:
                break
            dx, dy = text.xyann
            text.xyann = (dx, dy - (box.y1 - clash.y0 + 1) * points_per_pixel)
        placed.append(text.get_window_extent(renderer))


def metric_curves_figure(section: dict[str, Any]) -> Any:
    """The figure of :func:`metric_curves` (open; the caller saves and closes it)."""
    plt = _pyplot()
    key = section["primary_metric"]
    fig, (left, right) = plt.subplots(1, 2, figsize=(10, 3.6))
    seen = set()
    ends: dict[Any, list[tuple[str, float, float]]] = {left: [], right: []}
    for trial in section["trials"]:
        cls = health_class(trial)
        seen.add(cls)
        rows = [h for h in trial.get("history", []) if "epoch" in h]
        epochs = [h["epoch"] for h in rows]
        for ax, metric in ((left, key), (right, "train/loss")):
            values = [h.get(metric, float("nan")) for h in rows]
            ax.plot(epochs, values, marker="o", ms=3, color=HEALTH_COLOURS[cls], alpha=0.85)
            if values:
                ends[ax].append((trial["trial_id"][:8], float(epochs[-1]), float(values[-1])))
    left.set(title=f"{section['stage']}: {key} (higher is better)", xlabel="epoch", ylabel=key)
    right.set(title="train loss (lower is better)", xlabel="epoch", ylabel="train/loss")
    right.set_yscale("log")  # losses span orders of magnitude when a trial diverges
    _legend(left, seen)
    fig.tight_layout()
    for ax, labels in ends.items():
        _labels_apart(ax, labels, fontsize=6)
    return fig


def metric_curves(section: dict[str, Any], path: Path) -> Path:
    """Per trial: the primary validation metric (higher is better) and the train loss
    (lower is better) by epoch, each line coloured by the trial's health class and
    labelled with its trial id (no two labels overlapping)."""
    plt = _pyplot()
    fig = metric_curves_figure(section)
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def health_timeline_figure(sections: list[dict[str, Any]]) -> Any:
    """The figure of :func:`health_timeline` (open; the caller saves and closes it)."""
    plt = _pyplot()
    rows = [(s["stage"], t) for s in sections for t in s["trials"]]
    fig, ax = plt.subplots(figsize=(10, 0.35 * len(rows) + 1.2))
    seen = set()
    marks: list[tuple[str, float, float]] = []
    for y, (_, trial) in enumerate(rows):
        cls = health_class(trial)
        seen.add(cls)
        ax.barh(y, max(trial["epochs_run"], 0.05), left=0.5, color=HEALTH_COLOURS[cls], alpha=0.35, height=0.6)
        for diag in trial.get("diagnoses", []):
            fatal = diag.get("severity") == "fatal"
            ax.plot(diag.get("epoch", 0), y, "x" if fatal else "^", color="#d62728" if fatal else "#ff7f0e", ms=8)
            marks.append((diag["rule"], float(diag.get("epoch", 0)), float(y)))
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
    # Rules that fired at one epoch of one trial share a label ("dead_outputs, oversized_updates").
    _labels_apart(ax, marks, fontsize=7)
    return fig


def health_timeline(sections: list[dict[str, Any]], path: Path) -> Path:
    """One row per trial across every stage: a bar over the epochs it ran, coloured by its
    health class, with each diagnosis marked at its epoch (x = fatal, ^ = warning) and
    named (no two names overlapping)."""
    plt = _pyplot()
    fig = health_timeline_figure(sections)
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
