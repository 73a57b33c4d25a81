"""Reading a sweep's ``summary.json``: each trial's health class, stop counts, the
console summary and the edge-of-range warnings."""

from __future__ import annotations

import math
from collections import Counter
from typing import Any

from medsight_ray.stages.targets import check_targets

#: Health classes, in the order legends list them, with their colours.
HEALTH_COLOURS = {
    "healthy": "#2ca02c",         # ran to the end, no diagnosis
    "warned": "#ff7f0e",          # ran, with non-fatal diagnoses
    "early-stopped": "#7f7f7f",   # ASHA or patience: healthy but not promising
    "health-stopped": "#d62728",  # a fatal diagnosis stopped it
    "errored": "#000000",
}
#: A best value within this fraction of its range's end (log scale for loguniform) is "on the edge".
EDGE_FRACTION = 0.05


def fatal_rules(trial: dict[str, Any]) -> list[str]:
    """The rules that stopped ``trial`` (empty when none did), from its outcome record
    (a ``summary.json`` written before outcomes existed: from its fatal diagnoses)."""
    outcome = trial.get("outcome")
    if outcome:
        return sorted(outcome.get("fatal_rules", []))
    return sorted({d["rule"] for d in trial.get("diagnoses", []) if d.get("severity") == "fatal"})


def first_cause(trial: dict[str, Any]) -> str | None:
    """The rule whose fatal diagnosis fired first in ``trial`` (what stopped it), or None."""
    outcome = trial.get("outcome")
    if outcome and outcome.get("fatal_rules"):
        return outcome["fatal_rules"][0]  # the outcome keeps them in the order they fired
    fatal = [d["rule"] for d in trial.get("diagnoses", []) if d.get("severity") == "fatal"]
    return fatal[0] if fatal else None


def health_class(trial: dict[str, Any]) -> str:
    """One of :data:`HEALTH_COLOURS` for a trial record of ``summary.json``."""
    if trial["status"] == "errored":
        return "errored"
    if fatal_rules(trial):
        return "health-stopped"
    if trial["status"] == "stopped":
        return "early-stopped"
    return "warned" if trial.get("diagnoses") else "healthy"


def stop_counts(section: dict[str, Any]) -> Counter[str]:
    """How many trials of one stage ended how: health classes, and ``rule:<rule>`` for the
    health-stopped ones by their first cause, so that each trial counts once and the
    causes add up to the health-stopped count."""
    counts: Counter[str] = Counter()
    for trial in section["trials"]:
        cls = health_class(trial)
        counts[cls] += 1
        if cls == "health-stopped":
            counts[f"rule:{first_cause(trial)}"] += 1
    return counts


def _param_specs(section: dict[str, Any]) -> list[dict[str, Any]]:
    specs = section.get("params")
    if specs:
        return specs
    return [{"key": k, "dist": "uniform", "low": lo, "high": hi} for k, (lo, hi) in section.get("bounds", {}).items()]


def edge_warnings(section: dict[str, Any], fraction: float = EDGE_FRACTION) -> list[str]:
    """Warnings for numeric hyperparameters whose best value sits on the edge of its range.

    An optimum on the boundary means the best setting may lie outside the range searched.
    The position is measured on a log scale for ``loguniform`` parameters.
    """
    best = section.get("best")
    # A remedy trial's values came from a remedy (often the stage default), not from the
    # search: where they sit in the range says nothing about the range.
    if not best or best.get("lineage"):
        return []
    out = []
    for spec in _param_specs(section):
        if spec.get("dist") == "categorical" or spec["key"] not in best["config"]:
            continue
        value, low, high = float(best["config"][spec["key"]]), float(spec["low"]), float(spec["high"])
        if high <= low:
            continue
        if spec.get("dist") == "loguniform":
            position = (math.log(value) - math.log(low)) / (math.log(high) - math.log(low))
        else:
            position = (value - low) / (high - low)
        side = "low" if position <= fraction else "high" if position >= 1 - fraction else None
        if side:
            out.append(f"{section['stage']}: best {spec['key']} = {value:.4g} sits at the {side} edge of "
                       f"[{low:.4g}, {high:.4g}]; the optimum may lie {'below' if side == 'low' else 'above'} it: "
                       f"widen the range in {section.get('space', 'the search space')}")
    return out


def _fmt(value: Any) -> str:
    return f"{value:.4g}" if isinstance(value, float) else str(value)


def lineages(section: dict[str, Any]) -> list[list[dict[str, Any]]]:
    """Each lineage of one stage's sweep, in trial order: the diagnosed trial, then its
    remedy trials by attempt (a remedy trial's ``lineage`` names its root and parent)."""
    by_id = {t["trial_id"]: t for t in section["trials"]}
    chains: dict[str, list[dict[str, Any]]] = {}
    for trial in section["trials"]:
        lineage = trial.get("lineage")
        if lineage and lineage.get("root") in by_id:
            chains.setdefault(lineage["root"], [by_id[lineage["root"]]]).append(trial)
    return [sorted(chain, key=lambda t: (t.get("lineage") or {}).get("attempt", 0)) for chain in chains.values()]


def healed(trial: dict[str, Any]) -> bool:
    """A remedy trial that ran without a fatal diagnosis or an error."""
    return health_class(trial) not in ("health-stopped", "errored")


def lineage_lines(section: dict[str, Any]) -> list[str]:
    """One line per lineage: trial -> diagnosis -> remedy (its exact changes) -> outcome."""
    key = section["primary_metric"]
    lines = []
    for chain in lineages(section):
        steps = [chain[0]["trial_id"]]
        for trial in chain[1:]:
            lineage = trial["lineage"]
            metric = (trial.get("best") or {}).get(key)
            ending = ("healed" if healed(trial) else "stopped by " + ", ".join(fatal_rules(trial) or ["error"]))
            same = f" (same config as {trial['reused_from']}: its result reused)" if trial.get("reused_from") else ""
            shown = f", {key} {_fmt(metric)}" if metric is not None else ""
            steps.append(f"{lineage['rule']} @ epoch {lineage['epoch']} -> {', '.join(lineage['overrides'])} -> "
                         f"{trial['trial_id']}{same} {ending}{shown}")
        lines.append("    remedy: " + " -> ".join(steps))
    return lines


def console_summary(summary: dict[str, Any]) -> str:
    """The few lines printed at the end of a sweep: per stage, the best config and how
    many trials were stopped, and why."""
    lines = ["== sweep summary"]
    for section in summary.get("stages", []):
        counts = stop_counts(section)
        key = section["primary_metric"]
        best = section.get("best")
        head = f"{section['stage']}: {len(section['trials'])} trials"
        parts = [f"{counts[c]} {c}" for c in HEALTH_COLOURS if counts[c]]
        rules = [f"{counts[k]} by {k[5:]}" for k in sorted(counts) if k.startswith("rule:")]
        # Each stopped trial once, by the rule that fired first: the causes add up.
        lines.append(f"  {head} - {', '.join(parts)}" + (f" (stopped {', '.join(rules)}, first cause each)"
                                                        if rules else ""))
        if best:
            config = ", ".join(f"{k}={_fmt(v)}" for k, v in best["config"].items())
            lines.append(f"    best {best['trial_id']}: {key} {_fmt(best['best'].get(key))}; {config}")
            targets = check_targets(section["stage"], best["best"])
            if targets:
                lines.append("    stage targets: " + ", ".join(
                    f"{m} {_fmt(v)} {'>=' if ok else 'BELOW'} {t:g}" for m, t, v, ok in targets))
        else:
            lines.append("    no healthy trial finished with a checkpoint")
        reused = [t for t in section["trials"] if t.get("reused_from")]
        if reused:
            lines.append(f"    {len(reused)} trial{'s' if len(reused) > 1 else ''} repeated an earlier trial's config: "
                         + ", ".join(f"{t['trial_id']} = {t['reused_from']}" for t in reused)
                         + " (its result reused, not trained again)")
        lines += lineage_lines(section)
        lines += [f"    warning: {w}" for w in edge_warnings(section)]
    if summary.get("failed"):
        lines.append(f"  pipeline stopped: {summary['failed']}")
    if summary.get("final_model"):
        lines.append(f"  final model: {summary['final_model']}")
    return "\n".join(lines)
