"""Remedy trials inside Tune: a ``Searcher`` that follows a diagnosed trial with its cure.

:class:`RemedySearcher` wraps the sweep's own searcher (``OptunaSearch``). It suggests
the inner searcher's configs until ``samples`` of them are out; whenever a trial ends
with a fatal diagnosis, it queues a remedy trial: the trial's config with the first
applicable remedy of its diagnosis applied (:func:`medsight_ray.health.lineage.next_attempt`),
suggested next, ahead of any new sample. A remedy trial that is diagnosed again tries
the next remedy, up to ``remedies`` attempts per lineage.

What TPE learns is unchanged: the stopped trial reaches the inner searcher as before,
with its objective of 0. Remedy trials never do: the inner searcher did not suggest
them and does not know their ids, and their configs may lie outside the space. Remedy
trials do not count against ``samples``: the searcher says ``FINISHED`` only once the
samples are out, no remedy is queued and no trial that could still queue one runs.

Each remedy trial's config carries its lineage under ``LINEAGE_KEY`` (parent trial,
lineage root, attempt, the diagnosis, the remedy's words and exact overrides), so the
summary, the console and the report read it from the trial itself, also after a resume.

No config trains twice (:mod:`medsight_ray.tune.reuse`): a suggestion, sampled or a
remedy, whose run is one a trial of this sweep already trains or trained gets that
trial as its source under ``REUSE_KEY``, and takes its result instead of training. A
sampled one still reaches the inner searcher, which learns from it as from any trial;
a remedy that lands on a diagnosed run goes on with its lineage's next remedy. A
sampled trial that repeats a diagnosed run queues no remedy: the run's own lineage
already did.
"""

from __future__ import annotations

import base64
import json
import os
import tempfile
from dataclasses import dataclass
from typing import Any

from ray.tune.search import Searcher

from medsight_ray import atomicfile
from medsight_ray.config import apply_overrides, flatten, from_dict, to_dict
from medsight_ray.console import say
from medsight_ray.errors import MedsightError
from medsight_ray.fit.outcome import read_outcome
from medsight_ray.health.lineage import next_attempt
from medsight_ray.tune.reuse import REUSE_KEY, checkpoint_dirs, identity, mark_ended
from medsight_ray.tune.trial import LINEAGE_KEY, trial_overrides


def latest_checkpoint(run_dir: str) -> str | None:
    """The newest ``checkpoint_*`` directory of a Ray Train run (local path or URI)."""
    try:
        found = checkpoint_dirs(run_dir)
    except OSError:
        return None
    return found[-1] if found else None


@dataclass(frozen=True)
class Healer:
    """What a remedy needs to know of the sweep (plain data, so the searcher pickles).

    Attributes:
        task, stage: the stage the sweep tunes.
        base_config: every trial's config before its sampled keys (as a dict).
        train_root: where the trials' Ray Train runs live (``train-<trial_id>`` each).
        fingerprint: the dataset's; init_checkpoint: what every trial starts from.
    """

    task: str
    stage: str
    base_config: dict[str, Any]
    train_root: str
    fingerprint: str = ""
    init_checkpoint: str | None = None

    def identity(self, config: dict[str, Any]) -> str:
        """The identity of the run a trial with ``config`` trains (see :func:`identity`)."""
        from medsight_ray.stages.registry import get_stage

        return identity(get_stage(self.task, self.stage).config_cls, self.base_config, trial_overrides(config),
                        self.fingerprint, self.init_checkpoint)

    def ended(self, trial_id: str, error: bool) -> None:
        """Tell the trials that repeat ``trial_id``'s run that it ended."""
        mark_ended(self.train_root, trial_id, error)

    def diagnoses(self, trial_id: str) -> list[dict[str, Any]]:
        """Every diagnosis of the trial's run, from the outcome in its newest checkpoint
        (the report that carried a fatal diagnosis carried a checkpoint, and Ray Train
        keeps the newest checkpoint whatever its score); none when it trained no run."""
        from medsight_ray.data.store import child

        checkpoint = latest_checkpoint(child(self.train_root, f"train-{trial_id}"))
        outcome = read_outcome(checkpoint) if checkpoint else None
        return list(outcome.diagnoses) if outcome else []

    def remedy(self, trial_id: str, config: dict[str, Any], tried: list[str]) -> dict[str, Any] | None:
        """The remedy trial's config after trial ``trial_id`` (run with ``config``) was
        stopped, or None when its diagnosis has no config change left to try."""
        from medsight_ray.stages.registry import get_stage

        stage = get_stage(self.task, self.stage)
        cfg = apply_overrides(from_dict(stage.config_cls, self.base_config), trial_overrides(config))
        # Its own run's (it trained, or continued a run ASHA cut), else its source's.
        diagnoses = self.diagnoses(trial_id) or (self.diagnoses(config[REUSE_KEY]) if config.get(REUSE_KEY) else [])
        diagnosis, remedy, advice = next_attempt(diagnoses, cfg, stage.config_cls(), tried)
        if diagnosis is None or remedy is None:
            return None
        changed = remedy.changed(cfg)
        flat = flatten(to_dict(remedy.apply(cfg)))
        parent = config.get(LINEAGE_KEY) or {}
        lineage = {"parent": trial_id, "root": parent.get("root", trial_id), "attempt": parent.get("attempt", 0) + 1,
                   "rule": diagnosis["rule"], "epoch": diagnosis["epoch"], "remedy": remedy.words(cfg),
                   "overrides": remedy.overrides(cfg), "advice": [a.text for a in advice],
                   "tried": [*tried, remedy.why]}
        return {**trial_overrides(config), **{k: flat[k] for k in changed}, LINEAGE_KEY: lineage}


class RemedySearcher(Searcher):
    """Wraps ``inner`` (OptunaSearch): its samples, then a remedy trial after each
    trial a fatal diagnosis stopped, up to ``remedies`` per lineage (0: none), and no
    run trained twice (see the module)."""

    def __init__(self, inner: Searcher, healer: Healer, samples: int, remedies: int,
                 metric: str = "objective", mode: str = "max") -> None:
        super().__init__(metric=metric, mode=mode)
        self.inner = inner
        self.healer = healer
        self.samples = samples
        self.remedies = remedies
        self.suggested = 0  # configs the inner searcher gave
        self.queue: list[dict[str, Any]] = []  # remedy configs not yet suggested
        self.configs: dict[str, dict[str, Any]] = {}  # every live or finished trial's config
        self.live: set[str] = set()
        self.remedy_ids: set[str] = set()
        self.unhealed: list[dict[str, Any]] = []  # lineages that ran out of remedies
        self.runs: dict[str, str] = {}  # run identity -> the trial that trains (trained) it

    def set_search_properties(self, metric: str | None, mode: str | None, config: dict, **spec: Any) -> bool:
        super().set_search_properties(metric, mode, config, **spec)
        return self.inner.set_search_properties(metric, mode, config, **spec)

    def suggest(self, trial_id: str) -> dict | str | None:
        if self.queue:
            config = self.queue.pop(0)
            self.remedy_ids.add(trial_id)
        elif self.suggested < self.samples:
            config = self.inner.suggest(trial_id)
            if config is None or config == Searcher.FINISHED:
                return config
            self.suggested += 1
        elif self.live:
            return None  # a trial still running may end diagnosed and queue a remedy
        else:
            return Searcher.FINISHED
        key = self.healer.identity(config)
        if key in self.runs:
            config = {**config, REUSE_KEY: self.runs[key]}
        else:
            self.runs[key] = trial_id
        self.configs[trial_id] = config
        self.live.add(trial_id)
        return config

    def on_trial_result(self, trial_id: str, result: dict) -> None:
        if trial_id not in self.remedy_ids:
            self.inner.on_trial_result(trial_id, result)

    def on_trial_complete(self, trial_id: str, result: dict | None = None, error: bool = False) -> None:
        if trial_id not in self.remedy_ids:
            self.inner.on_trial_complete(trial_id, result=result, error=error)
        self.live.discard(trial_id)
        if trial_id not in self.configs:
            return
        config = self.configs[trial_id]
        self._ended(trial_id, config, error)
        if error or not result or result.get("health/fatal", 0.0) < 1.0:
            return
        lineage = config.get(LINEAGE_KEY) or {}
        if config.get(REUSE_KEY) and not lineage:
            return  # a sample that repeats a diagnosed run: that run's lineage is under way
        if lineage.get("attempt", 0) >= self.remedies:
            self.unhealed.append({"trial_id": trial_id, **lineage})
            return
        try:
            remedy = self.healer.remedy(trial_id, config, list(lineage.get("tried", [])))
        except (OSError, MedsightError) as err:
            # The sweep goes on without this remedy: one unreadable outcome (storage
            # hiccup, a config the stage now rejects) must not end every other trial.
            say(f"-- no remedy for trial {trial_id}: {err}")
            return
        if remedy is not None:
            self.queue.append(remedy)

    def _ended(self, trial_id: str, config: dict[str, Any], error: bool) -> None:
        key = self.healer.identity(config)
        if error and self.runs.get(key) == trial_id:
            # What an errored run did may say nothing of its config: the next trial
            # with it trains it again.
            del self.runs[key]
        try:
            self.healer.ended(trial_id, error)
        except OSError as err:
            # Only a trial that repeats this one waits for the mark; say why it may wait.
            say(f"-- could not record that trial {trial_id} ended: {err}")

    def add_evaluated_point(self, *args: Any, **kwargs: Any) -> None:
        self.inner.add_evaluated_point(*args, **kwargs)

    def get_state(self) -> dict[str, Any]:
        """Own state (JSON-ready) and the inner searcher's, saved by its own ``save``."""
        with tempfile.TemporaryDirectory() as tmp:
            path = os.path.join(tmp, "inner")
            self.inner.save(path)
            with open(path, "rb") as fh:
                inner = base64.b64encode(fh.read()).decode()
        return {"suggested": self.suggested, "queue": self.queue, "configs": self.configs,
                "live": sorted(self.live), "remedy_ids": sorted(self.remedy_ids), "unhealed": self.unhealed,
                "runs": self.runs, "inner": inner}

    def set_state(self, state: dict[str, Any]) -> None:
        self.suggested, self.queue, self.configs = state["suggested"], state["queue"], state["configs"]
        self.live, self.remedy_ids, self.unhealed = set(state["live"]), set(state["remedy_ids"]), state["unhealed"]
        self.runs = state.get("runs", {})
        with tempfile.TemporaryDirectory() as tmp:
            path = os.path.join(tmp, "inner")
            with open(path, "wb") as fh:
                fh.write(base64.b64decode(state["inner"]))
            self.inner.restore(path)

    def save(self, checkpoint_path: str) -> None:
        atomicfile.write_text(checkpoint_path, json.dumps(self.get_state(), default=str))

    def restore(self, checkpoint_path: str) -> None:
        with open(checkpoint_path) as fh:
            self.set_state(json.load(fh))
