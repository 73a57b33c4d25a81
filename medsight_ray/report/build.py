"""Assemble a sweep's report from its ``summary.json``: markdown and HTML side by side,
figures as PNG files in the same directory."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from medsight_ray import atomicfile
from medsight_ray.errors import DataError
from medsight_ray.health.diagnosis import group_not_judged
from medsight_ray.report import document
from medsight_ray.report.document import Block
from medsight_ray.report.figures import health_timeline, importance_bars, metric_curves
from medsight_ray.report.importance import param_importances
from medsight_ray.report.summary import (
    console_summary,
    edge_warnings,
    fatal_rules,
    healed,
    health_class,
    lineages,
)
from medsight_ray.stages.targets import check_targets

REPORT_DIR = "report"


def load_summary(directory: Path) -> dict[str, Any]:
    """A sweep's ``summary.json``, with a named error when it is missing or not a sweep's."""
    path = directory / "summary.json"
    try:
        summary = json.loads(path.read_text())
    except FileNotFoundError:
        raise DataError("no sweep summary here", where=str(path), expected="summary.json written by "
                        "python -m medsight_ray.tune", got="no such file") from None
    except json.JSONDecodeError as err:
        raise DataError("summary is not JSON", where=str(path), expected="JSON", got=str(err)) from None
    if not isinstance(summary, dict) or not isinstance(summary.get("stages"), list):
        raise DataError("not a sweep summary", where=str(path), expected="a 'stages' list of tuned stages",
                        got=f"keys {sorted(summary) if isinstance(summary, dict) else type(summary).__name__}")
    return summary


def _fmt(value: Any) -> str:
    return f"{value:.4g}" if isinstance(value, float) else "-" if value is None else str(value)


def _stage_blocks(section: dict[str, Any], out: Path, index: int) -> list[Block]:
    key = section["primary_metric"]
    blocks: list[Block] = [("h", 1, f"Stage {section['stage']}"),
                           ("p", f"Search space: {section.get('space')}. Primary metric: {key} (higher is better).")]
    rows = []
    for t in section["trials"]:
        diags = sorted({d["rule"] for d in t.get("diagnoses", [])})
        # A trial that repeated another's run took its result: it names that trial.
        trial = t["trial_id"] + (f" (= {t['reused_from']})" if t.get("reused_from") else "")
        rows.append([trial, health_class(t), t["epochs_run"], _fmt(t["best"].get(key)),
                     _fmt(t["final"].get(key)), t.get("stop_reason") or "", ", ".join(diags),
                     f"{t.get('wall_seconds', 0):.0f}",
                     ", ".join(f"{k}={_fmt(v)}" for k, v in t["config"].items())])
    blocks.append(("table", ["trial", "health", "epochs", f"best {key}", f"final {key}", "stop reason",
                             "diagnoses", "wall s", "config"], rows))
    if any(t.get("reused_from") for t in section["trials"]):
        blocks.append(("p", "A trial marked (= T) had the same config, data and start as trial T: it took T's "
                            "result instead of training the same run again."))
    best = section.get("best")
    blocks.append(("p", f"Best trial: {best['trial_id']} with {key} {_fmt(best['best'].get(key))}; checkpoint "
                        f"{best['checkpoint']}." if best else "No healthy trial finished with a checkpoint."))
    targets = check_targets(section["stage"], best["best"]) if best else []
    if targets:
        blocks.append(("table", ["stage target", "minimum", "best trial", "reached"],
                       [[m, f"{t:g}", _fmt(v), "yes" if ok else "NO"] for m, t, v, ok in targets]))
    curves = metric_curves(section, out / f"curves-{index}.png")
    blocks.append(("img", curves.name, f"{section['stage']}: metric curves per trial, coloured by health"))
    importances, why = param_importances(section)
    blocks.append(("h", 2, "Hyperparameter importance"))
    if importances:
        blocks.append(("table", ["parameter", "importance"], [[k, f"{v:.3f}"] for k, v in importances.items()]))
        bars = importance_bars(section["stage"], importances, out / f"importance-{index}.png")
        blocks.append(("img", bars.name, f"{section['stage']}: Optuna fANOVA importance"))
    else:
        blocks.append(("p", f"Not computed: {why}."))
    return blocks


def _diagnosis_blocks(sections: list[dict[str, Any]]) -> list[Block]:
    rows = []
    for section in sections:
        for t in section["trials"]:
            for d in t.get("diagnoses", []):
                evidence = ", ".join(f"{k} {_fmt(v)}" for k, v in (d.get("evidence") or {}).items())
                rows.append([section["stage"], t["trial_id"], d["rule"], d.get("severity", ""), d.get("epoch", ""),
                             evidence, "; ".join(d.get("remedies", []))])
    blocks: list[Block] = [("h", 1, "Diagnoses")]
    blocks.append(("table", ["stage", "trial", "rule", "severity", "epoch", "evidence", "remedies"], rows)
                  if rows else ("p", "No rule fired in any trial."))
    return blocks + _not_judged_blocks(sections)


def _not_judged_blocks(sections: list[dict[str, Any]]) -> list[Block]:
    """The rules each trial ended too short to judge, for the trials no fatal diagnosis
    stopped (a stopped trial has its verdict): a quiet monitor there is no clean bill."""
    rows = []
    for section in sections:
        for t in section["trials"]:
            outcome = t.get("outcome") or {}
            if outcome.get("stop_reason") == "health":
                continue
            for needs, rules in group_not_judged(outcome.get("not_judged") or {}).items():
                rows.append([section["stage"], t["trial_id"], t.get("epochs_run", ""), ", ".join(rules), needs])
    if not rows:
        return []
    return [("p", "Not judged: these trials ended before the rules below could judge them (each needs its grace "
                  "and patience first), so their silence says nothing."),
            ("table", ["stage", "trial", "epochs", "rules not judged", "each needs"], rows)]


def _remedy_blocks(sections: list[dict[str, Any]]) -> list[Block]:
    """Each lineage: the diagnosed trial, then every remedy trial with the diagnosis it
    answered, the exact config changes, and its outcome."""
    rows = []
    for section in sections:
        key = section["primary_metric"]
        for chain in lineages(section):
            for trial in chain[1:]:
                lineage = trial["lineage"]
                rows.append([section["stage"], lineage["root"], lineage["attempt"], lineage["parent"],
                             f"{lineage['rule']} @ {lineage['epoch']}", ", ".join(lineage["overrides"]),
                             trial["trial_id"], "healed" if healed(trial) else health_class(trial),
                             _fmt((trial.get("best") or {}).get(key))])
    if not rows:
        return []
    return [("h", 1, "Remedies"),
            ("p", "A trial stopped by a fatal diagnosis was followed by a remedy trial: its config with the "
                  "diagnosis' remedy applied (health/remedies.py). Healed: it ran without a fatal diagnosis."),
            ("table", ["stage", "lineage", "attempt", "after trial", "diagnosis", "changes", "remedy trial",
                       "outcome", "best metric"], rows)]


def concept_checkpoint(summary: dict[str, Any]) -> str | None:
    """The best concept model of the sweep: the final model when the last stage tuned is
    a concept stage, else the best checkpoint of any concept stage."""
    for section in reversed(summary["stages"]):
        if section["stage"].startswith("concepts/") and section.get("best") and section["best"].get("checkpoint"):
            return section["best"]["checkpoint"]
    return None


def build_report(directory: str | Path, cams: int = 4) -> dict[str, Path]:
    """Write ``DIR/report/report.md``, ``report.html`` and the PNG figures; returns their paths."""
    from medsight_ray.report.cams import cam_overlays

    root = Path(directory)
    summary = load_summary(root)
    out = root / REPORT_DIR
    out.mkdir(parents=True, exist_ok=True)
    sections = summary["stages"]
    n_trials = sum(len(s["trials"]) for s in sections)
    blocks: list[Block] = [
        ("p", f"Data: {summary.get('data')}. Trials: {n_trials} over {len(sections)} stage(s). Wall time: "
              f"{_fmt(summary.get('wall_seconds'))} s. Final model: {summary.get('final_model') or 'none'}."),
        ("pre", console_summary(summary)),
    ]
    warnings = [w for s in sections for w in edge_warnings(s)]
    blocks += [("h", 1, "Warnings"), ("list", warnings)] if warnings else []
    for index, section in enumerate(sections):
        blocks += _stage_blocks(section, out, index)
    if sections and any(s["trials"] for s in sections):
        timeline = health_timeline(sections, out / "health-timeline.png")
        blocks += [("h", 1, "Health timeline"), ("img", timeline.name, "which rule fired when, per trial")]
    blocks += _diagnosis_blocks(sections)
    blocks += _remedy_blocks(sections)
    stopped = {r for s in sections for t in s["trials"] for r in fatal_rules(t)}
    if stopped:
        blocks.append(("p", f"Rules that stopped trials: {', '.join(sorted(stopped))}."))
    checkpoint = concept_checkpoint(summary)
    if checkpoint and cams > 0 and summary.get("data"):
        # The checkpoint directory, as stored: a path or a URI (s3://, gs://, file://).
        overlays = cam_overlays(checkpoint, summary["data"], out, images=cams)
        blocks.append(("h", 1, "CAM overlays of the best concept model"))
        blocks.append(("p", f"Checkpoint: {checkpoint}. Validation images with boxes; heat inside the green boxes "
                            "is correct localisation."))
        blocks += [("img", p.name, caption) for p, caption in overlays]
    title = f"medsight_ray sweep report: {root.resolve().name}"
    paths = {"markdown": out / "report.md", "html": out / "report.html"}
    atomicfile.write_text(paths["markdown"], document.to_markdown(title, blocks))
    atomicfile.write_text(paths["html"], document.to_html(title, blocks))
    return paths
