"""The sweep report: health classes, stop counts, edge warnings, importance, documents."""

from __future__ import annotations

import json
import math
import random
from pathlib import Path

import pytest

from medsight_ray.report import __main__ as report_cli
from medsight_ray.report.build import build_report
from medsight_ray.report.document import to_html, to_markdown
from medsight_ray.report.importance import param_importances
from medsight_ray.report.summary import console_summary, edge_warnings, health_class, stop_counts
from tests.conftest import run_cli

LR = {"key": "optim.lr", "dist": "loguniform", "low": 1e-4, "high": 1.0, "choices": []}
BETA = {"key": "loss.beta", "dist": "uniform", "low": 0.0, "high": 2.0, "choices": []}
LOSS = {"key": "loss.name", "dist": "categorical", "low": None, "high": None, "choices": ["ce", "focal"]}


def _trial(tid: str, lr: float, beta: float, objective: float, status: str = "completed",
           reason: str | None = None, diagnoses: list | None = None, epochs: int = 3) -> dict:
    history = [{"epoch": e, "val/auc_macro": objective * e / epochs, "train/loss": 1.0 / e, "objective": objective}
               for e in range(1, epochs + 1)]
    return {"trial_id": tid, "stage": "concepts", "config": {"optim.lr": lr, "loss.beta": beta, "loss.name": "ce"},
            "status": status, "stop_reason": reason, "epochs_run": epochs,
            "best": {"val/auc_macro": objective, "objective": objective},
            "final": {"val/auc_macro": objective, "objective": objective}, "checkpoint": None,
            "wall_seconds": 12.0, "diagnoses": diagnoses or [], "history": history}


NOT_LEARNING = {"rule": "not_learning", "severity": "fatal", "epoch": 3, "step": 0,
                "evidence": {"auc_gain": 0.002}, "remedies": ["raise the learning rate 10-100x"]}
WARNING = {"rule": "class_collapse", "severity": "warning", "epoch": 2, "evidence": {}, "remedies": []}


def _section(trials: list[dict], best: int | None = 0) -> dict:
    return {"stage": "concepts/concepts", "space": "tune_spaces/concepts.yaml", "primary_metric": "val/auc_macro",
            "params": [LR, BETA, LOSS], "bounds": {}, "trials": trials,
            "best": trials[best] if best is not None else None}


def _sweep() -> dict:
    trials = [
        _trial("healthy1", 3e-3, 1.0, 0.93),
        _trial("seedlrs", 1e-4, 1.0, 0.0, "stopped", "health: not_learning", [NOT_LEARNING]),
        _trial("asha", 1e-2, 0.5, 0.80, "stopped", "early stopping (ASHA or patience)", epochs=2),
        _trial("warned", 5e-3, 1.5, 0.90, diagnoses=[WARNING]),
        _trial("broken", 0.5, 1.0, 0.0, "errored", "RuntimeError: boom", epochs=1),
    ]
    return {"data": "/nowhere", "out": "/x", "stages": [_section(trials)], "final_model": None, "wall_seconds": 99.0}


def test_health_class_of_each_ending() -> None:
    classes = [health_class(t) for t in _sweep()["stages"][0]["trials"]]
    assert classes == ["healthy", "health-stopped", "early-stopped", "warned", "errored"]
    # A fatal diagnosis makes a trial health-stopped even when its status says completed.
    assert health_class(_trial("t", 1e-3, 1, 0.5, diagnoses=[NOT_LEARNING])) == "health-stopped"


def test_stop_counts_name_the_rules() -> None:
    counts = stop_counts(_sweep()["stages"][0])
    assert counts["health-stopped"] == 1 and counts["rule:not_learning"] == 1
    assert counts["healthy"] == 1 and counts["early-stopped"] == 1 and counts["errored"] == 1


def test_stop_counts_count_each_trial_once_by_its_first_cause() -> None:
    """Two stopped trials, three fatal rules: the summary says 2 trials, not 3 causes."""
    dead = {**NOT_LEARNING, "rule": "dead_outputs", "epoch": 2}
    big = {**NOT_LEARNING, "rule": "oversized_updates", "epoch": 2}
    both = _trial("both", 1.0, 1.0, 0.0, "stopped", "health", [big, dead])
    both["outcome"] = {"fatal_rules": ["oversized_updates", "dead_outputs"]}  # the order they fired
    only = _trial("only", 1e-5, 1.0, 0.0, "stopped", "health", [NOT_LEARNING])
    section = _section([_trial("ok", 3e-3, 1.0, 0.9), both, only])
    counts = stop_counts(section)
    assert counts["health-stopped"] == 2
    assert {k: v for k, v in counts.items() if k.startswith("rule:")} == {"rule:oversized_updates": 1,
                                                                           "rule:not_learning": 1}
    text = console_summary({"stages": [section]})
    assert "1 healthy, 2 health-stopped (stopped 1 by not_learning, 1 by oversized_updates, first cause each)" in text


@pytest.mark.parametrize(("lr", "beta", "edges"), [
    (3e-3, 1.0, []),                                  # log position 0.37, mid-range
    (1.2e-4, 1.0, ["optim.lr = 0.00012 sits at the low edge"]),   # log position 0.02
    (3e-3, 1.95, ["loss.beta = 1.95 sits at the high edge"]),
    (0.9, 0.02, ["optim.lr = 0.9 sits at the high edge", "loss.beta = 0.02 sits at the low edge"]),
])
def test_edge_of_range_warning(lr: float, beta: float, edges: list[str]) -> None:
    warnings = edge_warnings(_section([_trial("b", lr, beta, 0.9)]))
    assert len(warnings) == len(edges)
    for warning, edge in zip(warnings, edges):
        assert edge in warning and "widen the range in tune_spaces/concepts.yaml" in warning


def test_a_remedy_trial_that_is_best_draws_no_edge_warning() -> None:
    edge = _trial("edge", 1.1e-4, 1.0, 0.95)
    assert edge_warnings(_section([edge]))
    assert edge_warnings(_section([{**edge, "lineage": {"parent": "x", "root": "x", "attempt": 1}}])) == []


def test_no_best_no_edge_warning() -> None:
    assert edge_warnings(_section([_trial("b", 1e-4, 0.0, 0.0)], best=None)) == []


def test_console_summary_gives_best_config_and_stop_reasons() -> None:
    text = console_summary(_sweep())
    assert "concepts/concepts: 5 trials - 1 healthy, 1 warned, 1 early-stopped, 1 health-stopped, 1 errored" in text
    assert "(stopped 1 by not_learning, first cause each)" in text
    assert "best healthy1: val/auc_macro 0.93; optim.lr=0.003, loss.beta=1, loss.name=ce" in text


def test_importance_ranks_the_parameter_that_drives_the_objective() -> None:
    rng = random.Random(0)
    trials = []
    for i in range(16):
        lr, beta = 10 ** rng.uniform(-4, 0), rng.uniform(0, 2)
        # The objective depends on lr alone (peak at 1e-2); beta is noise-free irrelevance.
        trials.append(_trial(f"t{i}", lr, beta, 1.0 - abs(math.log10(lr) + 2) / 4))
    ranked, why = param_importances(_section(trials))
    assert why is None and set(ranked) == {"optim.lr", "loss.beta", "loss.name"}
    assert abs(sum(ranked.values()) - 1) < 1e-6
    assert ranked["optim.lr"] > 0.8 and ranked["optim.lr"] > 5 * ranked["loss.beta"]


def test_importance_needs_enough_trials() -> None:
    ranked, why = param_importances(_section([_trial("a", 1e-3, 1, 0.5), _trial("b", 1e-2, 1, 0.6)]))
    assert ranked == {} and "at least 3 trials" in why


def test_documents_render_tables_and_escape_html() -> None:
    blocks = [("h", 1, "A <b>"), ("table", ["x", "y|z"], [[1, "a|b"]]), ("img", "f.png", "cap"), ("list", ["w"])]
    md = to_markdown("T", blocks)
    assert "## A <b>" in md and "| x | y\\|z |" in md and "| 1 | a\\|b |" in md and "![cap](f.png)" in md
    page = to_html("T", blocks)
    assert "<h2>A &lt;b&gt;</h2>" in page and "<td>a|b</td>" in page and '<img src="f.png"' in page


def test_build_report_writes_markdown_html_and_figures(tmp_path: Path) -> None:
    sweep = _sweep()
    sweep["stages"][0]["best"] = _trial("edge", 1.1e-4, 1.0, 0.95)
    sweep["stages"][0]["trials"].append(sweep["stages"][0]["best"])
    # A trial that ended before two rules could judge it, and one stopped by its verdict.
    sweep["stages"][0]["trials"][0]["outcome"] = {"not_judged": {"not_learning": "3 judged epochs and 30 steps",
                                                                 "overfitting": "3 judged epochs"}}
    sweep["stages"][0]["trials"][1]["outcome"] = {"stop_reason": "health", "fatal_rules": ["not_learning"],
                                                  "not_judged": {"overfitting": "3 judged epochs"}}
    (tmp_path / "summary.json").write_text(json.dumps(sweep))
    paths = build_report(tmp_path)
    md = paths["markdown"].read_text()
    for needle in ("| seedlrs | health-stopped | 3 |", "health: not_learning", "raise the learning rate 10-100x",
                   "## Warnings", "optim.lr = 0.00011 sits at the low edge", "### Hyperparameter importance",
                   "![concepts/concepts: metric curves per trial, coloured by health](curves-0.png)",
                   "health-timeline.png", "Rules that stopped trials: not_learning",
                   "| concepts/concepts | healthy1 | 3 | not_learning | 3 judged epochs and 30 steps |",
                   "| concepts/concepts | healthy1 | 3 | overfitting | 3 judged epochs |"):
        assert needle in md, needle
    assert "| seedlrs | 3 | overfitting |" not in md.replace("concepts/concepts | ", "")  # its verdict is in
    assert "<table>" in paths["html"].read_text()
    for name in ("curves-0.png", "health-timeline.png", "importance-0.png"):
        assert (tmp_path / "report" / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_report_cli_on_a_directory_without_summary_exits_2(tmp_path: Path, capsys) -> None:
    code, text = run_cli(report_cli.cli, "medsight_ray.report", ["--out", str(tmp_path)], capsys)
    assert code == 2 and "no sweep summary here" in text and "summary.json" in text and "Traceback" not in text


def test_cam_overlays_of_a_checkpoint_stored_under_a_uri(synth_dir, tmp_path: Path) -> None:
    """A sweep whose storage is a URI records its checkpoints as URIs; the report opens
    them where they are (``Path(uri) / "model.pt"`` turned ``file:///x`` into ``file:/x``)."""
    from medsight_ray.config import apply_overrides, to_dict
    from medsight_ray.data.store import list_dataset, read_info
    from medsight_ray.fit.checkpoint import save_checkpoint
    from medsight_ray.stages.registry import get_stage

    data = synth_dir("concepts", rows=60)
    info = read_info(list_dataset(data))
    stage = get_stage("concepts", "concepts")
    cfg = apply_overrides(stage.config_cls(), ["data.image_size=32", "model.backbone.name=resnet10t"])
    model = stage.build_model(cfg, info)
    meta = {"task": "concepts", "stage": "concepts", "config": to_dict(cfg), "info": info.to_json(),
            "fingerprint": "f"}
    save_checkpoint(tmp_path / "store" / "ckpt", model.state_dict(), meta, None, [])
    sweep = _sweep()
    sweep["data"] = str(data)
    sweep["stages"][0]["best"] = {**sweep["stages"][0]["trials"][0], "checkpoint": f"file://{tmp_path}/store/ckpt"}
    (tmp_path / "summary.json").write_text(json.dumps(sweep))
    paths = build_report(tmp_path, cams=2)
    md = paths["markdown"].read_text()
    assert "CAM overlays of the best concept model" in md and f"file://{tmp_path}/store/ckpt" in md
    assert (paths["markdown"].parent / "cams-0.png").stat().st_size > 1000


def _healed_sweep() -> dict:
    """seedlrs (stopped by not_learning) -> remedy r1 (stopped again) -> remedy r2 (healed)."""
    sweep = _sweep()
    trials = sweep["stages"][0]["trials"]
    first = {"parent": "seedlrs", "root": "seedlrs", "attempt": 1, "rule": "not_learning", "epoch": 3,
             "remedy": "raise the learning rate to the stage default (optim.lr 0.0001 -> 0.003)",
             "overrides": ["optim.lr=0.003"]}
    again = _trial("r1", 3e-3, 1.0, 0.0, "stopped", "health: not_learning", [NOT_LEARNING])
    trials.append({**again, "lineage": first, "outcome": {"fatal_rules": ["not_learning"]}})
    second = {**first, "parent": "r1", "attempt": 2, "overrides": ["optim.lr=0.03"]}
    trials.append({**_trial("r2", 3e-2, 1.0, 0.91), "lineage": second})
    return sweep


def test_each_lineage_reads_trial_diagnosis_changes_outcome_in_console_and_report(tmp_path: Path) -> None:
    sweep = _healed_sweep()
    text = console_summary(sweep)
    assert ("remedy: seedlrs -> not_learning @ epoch 3 -> optim.lr=0.003 -> r1 stopped by not_learning, "
            "val/auc_macro 0 -> not_learning @ epoch 3 -> optim.lr=0.03 -> r2 healed, val/auc_macro 0.91") in text
    (tmp_path / "summary.json").write_text(json.dumps(sweep))
    md = build_report(tmp_path)["markdown"].read_text()
    assert "# Remedies" in md
    assert "| concepts/concepts | seedlrs | 2 | r1 | not_learning @ 3 | optim.lr=0.03 | r2 | healed | 0.91 |" in md
    # Without remedy trials, no such section.
    (tmp_path / "summary.json").write_text(json.dumps(_sweep()))
    assert "# Remedies" not in build_report(tmp_path)["markdown"].read_text()


def test_a_trial_that_took_an_earlier_trials_result_says_so_in_console_and_report(tmp_path: Path) -> None:
    """The lineage's last remedy, r2, repeated the run of the sweep's first trial."""
    sweep = _healed_sweep()
    trials = sweep["stages"][0]["trials"]
    trials[-1]["reused_from"] = trials[0]["trial_id"]
    text = console_summary(sweep)
    source = trials[0]["trial_id"]
    assert f"-> r2 (same config as {source}: its result reused) healed, val/auc_macro 0.91" in text
    assert f"1 trial repeated an earlier trial's config: r2 = {source} (its result reused, not trained again)" in text
    (tmp_path / "summary.json").write_text(json.dumps(sweep))
    md = build_report(tmp_path)["markdown"].read_text()
    assert f"| r2 (= {source}) |" in md and "took T's result instead of training the same run again" in md


def _text_boxes(fig) -> list:
    renderer = fig.canvas.get_renderer()
    return [(t.get_text(), t.get_window_extent(renderer)) for ax in fig.axes for t in ax.texts if t.get_text()]


def test_no_two_labels_of_a_figure_overlap() -> None:
    """Three trials of one config end at one point, a fourth just beside them, and two
    rules fire at one epoch of one trial: every label stays readable."""
    import matplotlib.pyplot as plt

    from medsight_ray.report.figures import health_timeline_figure, metric_curves_figure

    same = [_trial(f"same{i}aaaa", 3e-3, 1.0, 0.9629) for i in range(3)]
    near = _trial("nearbbbb", 4e-3, 1.0, 0.9630)
    dead = {**NOT_LEARNING, "rule": "dead_outputs", "epoch": 2}
    big = {**NOT_LEARNING, "rule": "oversized_updates", "epoch": 2}
    section = _section([*same, near, _trial("stopcccc", 1.0, 1.0, 0.1, "stopped", "health", [dead, big], 2)])
    for fig in (metric_curves_figure(section), health_timeline_figure([section])):
        boxes = _text_boxes(fig)
        assert boxes
        clashes = [(a, b) for i, (a, box_a) in enumerate(boxes) for b, box_b in boxes[i + 1:] if box_a.overlaps(box_b)]
        assert clashes == [], clashes
        plt.close(fig)
    curves = metric_curves_figure(section)
    assert "same0aaa, same1aaa, same2aaa" in [t for t, _ in _text_boxes(curves)]  # one label for one point
    timeline = health_timeline_figure([section])
    assert "dead_outputs, oversized_updates" in [t for t, _ in _text_boxes(timeline)]
    plt.close("all")
