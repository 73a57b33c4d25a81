"""A trial's run identity, and how a trial that repeats a run finds that run's result."""

from __future__ import annotations

from pathlib import Path

import pytest

from medsight_ray.config import to_dict
from medsight_ray.fit.checkpoint import save_checkpoint
from medsight_ray.fit.outcome import OUTCOME_FILE, Outcome
from medsight_ray.stages.registry import get_stage
from medsight_ray.tune.reuse import find_source, identity, mark_ended, replay_rows, wait_for_source

GRADING = get_stage("grading")


def _identity(overrides: dict, fingerprint: str = "f1", init: str | None = None) -> str:
    return identity(GRADING.config_cls, to_dict(GRADING.config_cls()), overrides, fingerprint, init)


def test_the_same_run_whatever_way_its_config_was_reached() -> None:
    default = _identity({})
    # A remedy's lr x 0.1 of 0.03 is the default 0.003 (to 1e-16), and the default
    # written out is the default.
    assert _identity({"optim.lr": 0.03 * 0.1}) == default
    assert _identity({"optim.lr": 0.003, "optim.backbone_lr_scale": 1.0}) == default
    # Anything that changes what trains is another run.
    assert _identity({"optim.lr": 0.0031}) != default
    assert _identity({"fit.seed": 1}) != default
    assert _identity({}, fingerprint="f2") != default
    assert _identity({}, init="/runs/stage1/checkpoint_000002") != default


def _run(root: Path, trial: str, epochs: int, status: str, keep: tuple[int, ...] | None = None) -> None:
    """A trial's Ray Train run: a checkpoint per epoch (those in ``keep``), each with the
    history and outcome up to its epoch."""
    history = [{"epoch": e, "objective": 0.5 + e / 100, "val/auc": 0.5 + e / 100, "details": {"x": [1]}}
               for e in range(1, epochs + 1)]
    for epoch in keep or range(1, epochs + 1):
        outcome = Outcome(status=status if epoch == epochs else "running", epochs_run=epoch)
        save_checkpoint(root / f"train-{trial}" / f"checkpoint_{epoch - 1:06d}", {}, {}, None, history[:epoch],
                        {OUTCOME_FILE: outcome.to_dict()})


def test_a_finished_run_is_replayed_epoch_by_epoch_with_its_kept_checkpoints(tmp_path: Path) -> None:
    _run(tmp_path, "a", 3, "completed", keep=(2, 3))
    source = find_source(str(tmp_path), "a")
    assert source.how == "final" and source.last.endswith("checkpoint_000002")
    rows = replay_rows(source, lambda uri: "store:" + uri)
    assert [r["epoch"] for r in rows] == [1, 2, 3] and all("details" not in r for r in rows)
    assert "checkpoint_path" not in rows[0]
    assert rows[1]["checkpoint_path"] == "store:" + str(tmp_path / "train-a" / "checkpoint_000001")


def test_an_unfinished_run_is_waited_for_until_its_trial_ends(tmp_path: Path) -> None:
    _run(tmp_path, "a", 2, "running")
    assert find_source(str(tmp_path), "a") is None  # may still be training
    looks = []

    def sleep(seconds: float) -> None:
        looks.append(seconds)
        mark_ended(str(tmp_path), "a", error=False)  # cut by the scheduler meanwhile

    source = wait_for_source(str(tmp_path), "a", sleep=sleep)
    assert len(looks) == 1 and source.how == "unfinished" and source.last.endswith("checkpoint_000001")
    assert [r["epoch"] for r in replay_rows(source, str)] == [1, 2]


@pytest.mark.parametrize(("epochs", "error"), [(2, True), (0, False)])
def test_an_errored_run_or_one_without_a_checkpoint_gives_nothing_to_take(tmp_path: Path, epochs: int,
                                                                          error: bool) -> None:
    if epochs:
        _run(tmp_path, "a", epochs, "running")
    mark_ended(str(tmp_path), "a", error=error)
    source = find_source(str(tmp_path), "a")
    # What an errored run did may say nothing of its config: the trial trains itself.
    assert source.how == "errored" and replay_rows(source, str) == []


def test_the_summary_names_a_source_only_where_its_result_was_taken() -> None:
    from medsight_ray.tune.sweep import _reused_from

    config = {"optim.lr": 0.003, "_same_as": "a"}
    replayed = [{"epoch": 1, "checkpoint_path": "/store/train/train-a/checkpoint_000000"}]
    assert _reused_from({"reused_from": "a"}, [], config) == "a"  # its driver said so
    assert _reused_from({}, replayed, config) == "a"  # stopped by Tune while it reported a's epochs
    # Its source errored: it trained itself, and its checkpoints are its own.
    trained = [{"epoch": 1, "checkpoint_path": "/store/train/train-b/checkpoint_000000"}]
    assert _reused_from({"outcome": {}}, trained, config) is None and _reused_from({}, trained, config) is None
    assert _reused_from({}, replayed, {"optim.lr": 0.003}) is None


def _diagnosed_run(root: Path, trial: str, rule: str) -> None:
    diagnosis = {"rule": rule, "severity": "fatal", "stage": "grading/grading", "epoch": 1, "step": 0,
                 "evidence": {}, "threshold": "", "causes": [], "remedies": []}
    outcome = Outcome(status="stopped", epochs_run=1, diagnoses=(diagnosis,))
    save_checkpoint(root / f"train-{trial}" / "checkpoint_000000", {}, {}, None, [{"epoch": 1}],
                    {OUTCOME_FILE: outcome.to_dict()})


def test_a_remedy_reads_the_diagnosis_of_the_run_the_trial_trained_else_of_its_source(tmp_path: Path) -> None:
    from medsight_ray.tune.remedy_search import Healer
    from medsight_ray.tune.trial import LINEAGE_KEY

    healer = Healer("grading", "grading", to_dict(GRADING.config_cls()), str(tmp_path), "f1")
    _diagnosed_run(tmp_path, "a", "non_finite")
    config = {"optim.lr": 3.0, "_same_as": "a"}
    # "b" took "a"'s result and trained nothing: a's diagnosis is b's.
    assert healer.remedy("b", config, [])[LINEAGE_KEY]["rule"] == "non_finite"
    # "b" continued "a"'s run (ASHA had cut it) and was diagnosed in its own run.
    _diagnosed_run(tmp_path, "b", "exploding_gradients")
    assert healer.remedy("b", config, [])[LINEAGE_KEY]["rule"] == "exploding_gradients"


def test_the_demos_stage_1_remedy_of_lr_1_is_its_default_point_so_it_is_not_trained_again(tmp_path: Path) -> None:
    """The demo's concepts sweep (tune_spaces/concepts.yaml, with the demo's own settings)
    evaluates the seeds' rates, lr 1.0 and the defaults first. lr 1.0 is stopped as too
    fast; its remedy goes back to the stage default in one move: the default point's run,
    which the searcher hands to that trial as its source. The first points are three runs."""
    from medsight_ray.tune.__main__ import DEMO_PLAN, DEMO_SIZE, spaces_dir
    from medsight_ray.tune.remedy_search import Healer
    from medsight_ray.tune.space import load_space
    from medsight_ray.tune.sweep import SweepOptions, base_config

    space = load_space(spaces_dir() / "concepts.yaml")
    epochs = DEMO_PLAN["concepts"][1]
    options = SweepOptions(overrides=(f"fit.epochs={epochs}", f"data.image_size={DEMO_SIZE}",
                                      "fit.cpus_per_worker=0.5"))
    healer = Healer("concepts", "concepts", to_dict(base_config(space, options)), str(tmp_path), "demo")
    seeds, too_fast, default = (dict(p) for p in space.points)
    assert len({healer.identity(p) for p in (seeds, too_fast, default)}) == 3
    diagnosis = {"rule": "oversized_updates", "severity": "fatal", "stage": "concepts/concepts", "epoch": 1,
                 "step": 0, "evidence": {}, "threshold": "", "causes": [], "remedies": []}
    save_checkpoint(tmp_path / "train-fast" / "checkpoint_000000", {}, {}, None, [{"epoch": 1}],
                    {OUTCOME_FILE: Outcome(status="stopped", epochs_run=1, diagnoses=(diagnosis,)).to_dict()})
    remedy = healer.remedy("fast", too_fast, [])
    assert healer.identity(remedy) == healer.identity(default)
