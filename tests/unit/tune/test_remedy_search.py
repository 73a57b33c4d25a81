"""The remedy searcher: remedy trials come next, on top of the samples, and never reach
the inner searcher; its queue survives a save and restore; a run already trained in the
sweep is not trained again."""

from __future__ import annotations

import pickle
from pathlib import Path
from typing import Any

from ray.tune.search import Searcher

from medsight_ray.tune.remedy_search import RemedySearcher
from medsight_ray.tune.reuse import REUSE_KEY
from medsight_ray.tune.trial import LINEAGE_KEY, trial_overrides

FATAL = {"objective": 0.0, "health/fatal": 1.0}
FINE = {"objective": 0.7, "health/fatal": 0.0}


class Inner(Searcher):
    """Suggests lr 1, 2, 3, ... (or the ``lrs`` given, in turn); records every call it gets."""

    def __init__(self, lrs: list[float] | None = None) -> None:
        super().__init__(metric="objective", mode="max")
        self.count = 0
        self.lrs = lrs
        self.seen: list[tuple[str, str]] = []

    def suggest(self, trial_id: str) -> dict:
        self.count += 1
        self.seen.append(("suggest", trial_id))
        return {"optim.lr": self.lrs[self.count - 1] if self.lrs else float(self.count)}

    def on_trial_result(self, trial_id: str, result: dict) -> None:
        self.seen.append(("result", trial_id))

    def on_trial_complete(self, trial_id: str, result: dict | None = None, error: bool = False) -> None:
        self.seen.append(("complete", trial_id))

    def save(self, checkpoint_path: str) -> None:
        Path(checkpoint_path).write_bytes(pickle.dumps((self.count, self.seen)))

    def restore(self, checkpoint_path: str) -> None:
        self.count, self.seen = pickle.loads(Path(checkpoint_path).read_bytes())


class Healer:
    """Halves the lr of a stopped trial; records the rules each call says were tried, the
    run each remedy read its diagnosis from, and each trial said to have ended. A run is
    its config's values."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, list[str]]] = []
        self.read: list[str] = []
        self.ended_trials: list[tuple[str, bool]] = []

    def identity(self, config: dict[str, Any]) -> str:
        return repr(sorted(trial_overrides(config).items()))

    def ended(self, trial_id: str, error: bool) -> None:
        self.ended_trials.append((trial_id, error))

    def remedy(self, trial_id: str, config: dict[str, Any], tried: list[str]) -> dict[str, Any]:
        self.calls.append((trial_id, tried))
        self.read.append(config.get(REUSE_KEY) or trial_id)
        parent = config.get(LINEAGE_KEY) or {}
        return {"optim.lr": config["optim.lr"] / 2,
                LINEAGE_KEY: {"parent": trial_id, "root": parent.get("root", trial_id),
                              "attempt": parent.get("attempt", 0) + 1, "tried": [*tried, "rule"]}}


def _searcher(samples: int = 2, remedies: int = 2, lrs: list[float] | None = None
              ) -> tuple[RemedySearcher, Inner, Healer]:
    inner, healer = Inner(lrs), Healer()
    return RemedySearcher(inner, healer, samples, remedies), inner, healer


def test_a_stopped_trial_is_followed_by_its_remedy_before_the_next_sample() -> None:
    searcher, inner, _ = _searcher()
    assert searcher.suggest("a") == {"optim.lr": 1.0}
    searcher.on_trial_result("a", FATAL)
    searcher.on_trial_complete("a", FATAL)
    remedy = searcher.suggest("r1")
    assert remedy["optim.lr"] == 0.5 and remedy[LINEAGE_KEY]["root"] == "a"
    assert searcher.suggest("b") == {"optim.lr": 2.0}
    searcher.on_trial_result("r1", FINE)
    searcher.on_trial_complete("r1", FINE)
    searcher.on_trial_complete("b", FINE)
    # The inner searcher saw its own trials only: the stopped one (objective 0) included.
    assert [t for _, t in inner.seen] == ["a", "a", "a", "b", "b"]
    assert searcher.suggest("c") == Searcher.FINISHED


def test_remedies_do_not_count_against_the_samples_and_finish_waits_for_live_trials() -> None:
    searcher, _, _ = _searcher(samples=1)
    searcher.suggest("a")
    assert searcher.suggest("b") is None  # samples out, but "a" may still queue a remedy
    searcher.on_trial_complete("a", FATAL)
    assert searcher.suggest("r1")[LINEAGE_KEY]["parent"] == "a"  # the last sample's remedy still runs
    assert searcher.suggest("x") is None
    searcher.on_trial_complete("r1", FINE)
    assert searcher.suggest("x") == Searcher.FINISHED


def test_a_lineage_stops_after_its_remedies() -> None:
    searcher, _, healer = _searcher(samples=1, remedies=2)
    searcher.suggest("a")
    searcher.on_trial_complete("a", FATAL)
    searcher.suggest("r1")
    searcher.on_trial_complete("r1", FATAL)
    r2 = searcher.suggest("r2")
    assert r2[LINEAGE_KEY]["attempt"] == 2 and r2["optim.lr"] == 0.25
    searcher.on_trial_complete("r2", FATAL)
    assert searcher.suggest("r3") == Searcher.FINISHED
    assert [c[1] for c in healer.calls] == [[], ["rule"]]  # each attempt knows what was tried
    assert searcher.unhealed[0]["trial_id"] == "r2"
    # Errored or healthy trials queue nothing.
    other, _, other_healer = _searcher(samples=2)
    other.suggest("a")
    other.on_trial_complete("a", FATAL, error=True)
    other.suggest("b")
    other.on_trial_complete("b", FINE)
    assert other_healer.calls == []


def test_a_queued_remedy_survives_save_and_restore(tmp_path: Path) -> None:
    searcher, _, _ = _searcher(samples=1)
    searcher.suggest("a")
    searcher.on_trial_complete("a", FATAL)
    searcher.save(str(tmp_path / "searcher.pkl"))
    restored, inner, _ = _searcher(samples=1)
    restored.restore(str(tmp_path / "searcher.pkl"))
    assert restored.suggest("r1")[LINEAGE_KEY]["parent"] == "a"
    assert inner.count == 1 and ("complete", "a") in inner.seen  # the inner state came back too


class BrokenHealer(Healer):
    def remedy(self, trial_id: str, config: dict[str, Any], tried: list[str]) -> dict[str, Any]:
        raise OSError("storage unreachable")


def test_an_unreadable_outcome_costs_its_remedy_not_the_sweep(capsys) -> None:
    searcher = RemedySearcher(Inner(), BrokenHealer(), samples=1, remedies=2)
    searcher.suggest("a")
    searcher.on_trial_complete("a", FATAL)
    assert "no remedy for trial a: storage unreachable" in capsys.readouterr().out
    assert searcher.suggest("b") == Searcher.FINISHED


def test_a_sample_that_repeats_a_run_takes_its_result_and_still_reaches_the_inner_searcher() -> None:
    searcher, inner, healer = _searcher(samples=3, lrs=[1.0, 2.0, 1.0])
    assert REUSE_KEY not in searcher.suggest("a") and REUSE_KEY not in searcher.suggest("b")
    assert searcher.suggest("c") == {"optim.lr": 1.0, REUSE_KEY: "a"}  # "a" may still run: "c" waits for it
    for trial in ("a", "b", "c"):
        searcher.on_trial_complete(trial, FINE)
    assert ("complete", "c") in inner.seen  # TPE learns from it as from any trial
    assert healer.ended_trials == [("a", False), ("b", False), ("c", False)]


def test_a_remedy_that_lands_on_a_trained_run_takes_its_result() -> None:
    """The lineage of lr 2 (halved: 1) lands on trial "a", which trained lr 1 already."""
    searcher, _, healer = _searcher(samples=2, lrs=[1.0, 2.0])
    searcher.suggest("a")
    searcher.on_trial_complete("a", FINE)
    searcher.suggest("b")
    searcher.on_trial_complete("b", FATAL)
    remedy = searcher.suggest("r1")
    assert remedy["optim.lr"] == 1.0 and remedy[REUSE_KEY] == "a" and remedy[LINEAGE_KEY]["parent"] == "b"


def test_a_reused_run_that_was_diagnosed_goes_on_with_its_lineage_only() -> None:
    # lr 2 is stopped; its remedy (lr 1) repeats trial "a", which was stopped too.
    searcher, _, healer = _searcher(samples=3, remedies=2, lrs=[1.0, 2.0, 1.0])
    searcher.suggest("a")
    searcher.on_trial_complete("a", FATAL)  # its own remedy: lr 0.5
    assert searcher.suggest("r_a")["optim.lr"] == 0.5
    searcher.on_trial_complete("r_a", FINE)
    searcher.suggest("b")
    searcher.on_trial_complete("b", FATAL)
    remedy = searcher.suggest("r_b")
    assert remedy[REUSE_KEY] == "a"
    searcher.on_trial_complete("r_b", FATAL)
    # The lineage of "b" tries its next remedy, read from the run "a" trained, and it
    # repeats the run "r_a" trained.
    second = searcher.suggest("r_b2")
    assert healer.read[-1] == "a" and second[LINEAGE_KEY]["attempt"] == 2 and second[REUSE_KEY] == "r_a"
    searcher.on_trial_complete("r_b2", FINE)
    # A sample that repeats the stopped run "a" queues nothing: "a"'s lineage did.
    calls = len(healer.calls)
    assert searcher.suggest("c")[REUSE_KEY] == "a"
    searcher.on_trial_complete("c", FATAL)
    assert len(healer.calls) == calls and searcher.suggest("d") == Searcher.FINISHED


def test_an_errored_run_is_trained_again_and_the_runs_survive_save_and_restore(tmp_path: Path) -> None:
    searcher, _, healer = _searcher(samples=4, remedies=0, lrs=[1.0, 1.0, 1.0, 2.0])
    searcher.suggest("a")
    searcher.on_trial_complete("a", None, error=True)
    assert REUSE_KEY not in searcher.suggest("b")  # what "a" did says nothing of lr 1
    searcher.on_trial_complete("b", FINE)
    assert ("a", True) in healer.ended_trials
    searcher.save(str(tmp_path / "searcher.json"))
    restored, _, _ = _searcher(samples=4, remedies=0, lrs=[1.0, 1.0, 1.0, 2.0])
    restored.restore(str(tmp_path / "searcher.json"))
    assert restored.suggest("c")[REUSE_KEY] == "b"
    # Without remedies, a stopped trial queues none.
    restored.on_trial_complete("c", FATAL)
    assert REUSE_KEY not in restored.suggest("d") and restored.suggest("e") is None
