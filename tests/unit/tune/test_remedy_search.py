"""The remedy searcher: remedy trials come next, on top of the samples, and never reach
the inner searcher; its queue survives a save and restore."""

from __future__ import annotations

import pickle
from pathlib import Path
from typing import Any

from ray.tune.search import Searcher

from medsight_ray.tune.remedy_search import RemedySearcher
from medsight_ray.tune.trial import LINEAGE_KEY

FATAL = {"objective": 0.0, "health/fatal": 1.0}
FINE = {"objective": 0.7, "health/fatal": 0.0}


class Inner(Searcher):
    """Suggests lr 1, 2, 3, ...; records every call it gets."""

    def __init__(self) -> None:
        super().__init__(metric="objective", mode="max")
        self.count = 0
        self.seen: list[tuple[str, str]] = []

    def suggest(self, trial_id: str) -> dict:
        self.count += 1
        self.seen.append(("suggest", trial_id))
        return {"optim.lr": float(self.count)}

    def on_trial_result(self, trial_id: str, result: dict) -> None:
        self.seen.append(("result", trial_id))

    def on_trial_complete(self, trial_id: str, result: dict | None = None, error: bool = False) -> None:
        self.seen.append(("complete", trial_id))

    def save(self, checkpoint_path: str) -> None:
        Path(checkpoint_path).write_bytes(pickle.dumps((self.count, self.seen)))

    def restore(self, checkpoint_path: str) -> None:
        self.count, self.seen = pickle.loads(Path(checkpoint_path).read_bytes())


class Healer:
    """Halves the lr of a stopped trial; records the rules each call says were tried."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, list[str]]] = []

    def remedy(self, trial_id: str, config: dict[str, Any], tried: list[str]) -> dict[str, Any]:
        self.calls.append((trial_id, tried))
        parent = config.get(LINEAGE_KEY) or {}
        return {"optim.lr": config["optim.lr"] / 2,
                LINEAGE_KEY: {"parent": trial_id, "root": parent.get("root", trial_id),
                              "attempt": parent.get("attempt", 0) + 1, "tried": [*tried, "rule"]}}


def _searcher(samples: int = 2, remedies: int = 2) -> tuple[RemedySearcher, Inner, Healer]:
    inner, healer = Inner(), Healer()
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


class BrokenHealer:
    def remedy(self, trial_id: str, config: dict[str, Any], tried: list[str]) -> dict[str, Any]:
        raise OSError("storage unreachable")


def test_an_unreadable_outcome_costs_its_remedy_not_the_sweep(capsys) -> None:
    searcher = RemedySearcher(Inner(), BrokenHealer(), samples=1, remedies=2)
    searcher.suggest("a")
    searcher.on_trial_complete("a", FATAL)
    assert "no remedy for trial a: storage unreachable" in capsys.readouterr().out
    assert searcher.suggest("b") == Searcher.FINISHED
