"""The health monitor: runs the rules inside the fit loop and says when to stop.

Per optimiser step it sees the loss and the total gradient norm (which clipping
computes anyway, with foreach kernels, so watching costs almost nothing). Per epoch it
sees the validation metrics. A fatal diagnosis stops the run at the end of that epoch
(a non-finite gradient stops the epoch at once); every diagnosis goes into the
report, the checkpoint's history, ``summary.json`` and the console.
"""

from __future__ import annotations

from dataclasses import asdict, replace
from typing import Any

from medsight_ray.health.config import HealthConfig, RuleConfig
from medsight_ray.health.diagnosis import Diagnosis
from medsight_ray.health.rule import stops_run, supported_causes
from medsight_ray.health.rules import EPOCH_RULES, REGISTRY, SKIPPED_STEP_RULES, STEP_RULES, StepState


class HealthMonitor:
    """Evaluate the rules of ``cfg`` for one run of stage ``stage`` (``task/name``)
    whose primary metric (higher is better) is ``primary``."""

    def __init__(self, cfg: HealthConfig, stage: str, primary: str = "", config: Any = None) -> None:
        self.cfg = cfg
        #: The run's stage config: remedies are sized on it and worded from its values
        #: (None: diagnoses carry no remedies).
        self.config = config
        self.stage = stage
        self.primary = primary
        self.state = StepState()
        #: 0-based epoch the monitor is in: steps belong to it, and the epoch's verdict
        #: comes with on_epoch. After on_epoch(e) the next steps belong to epoch e + 1.
        self.epoch = 0
        self.history: list[dict[str, Any]] = []
        self.diagnoses: list[Diagnosis] = []
        self._streaks: dict[str, int] = {}
        #: The untrained model's validation metrics (:meth:`on_start`), or None.
        self.start: dict[str, Any] | None = None

    def _rule(self, name: str) -> RuleConfig:
        return getattr(self.cfg, name)

    def begin_epoch(self, epoch: int) -> None:
        """The steps that follow belong to 0-based ``epoch`` (a run resumed mid-way
        says where it is)."""
        self.epoch = epoch

    def _fire(self, name: str, evidence: dict[str, Any], threshold: str, step: int) -> Diagnosis:
        # The causes this evidence on this run's config supports, not every cause the
        # rule knows: a verdict is read as a promise.
        causes = supported_causes(REGISTRY[name], evidence, self.config)
        stops = stops_run(REGISTRY[name], self._rule(name), evidence, self.config)
        # Diagnoses are stamped 1-based: the epoch whose step or verdict fired them.
        diagnosis = Diagnosis(name, "fatal" if stops else "warn", self.stage, self.epoch + 1, step,
                              evidence, threshold, causes, self._remedy_words(name, evidence))
        self.diagnoses.append(diagnosis)
        return diagnosis

    def _remedy_words(self, name: str, evidence: dict[str, Any]) -> tuple[str, ...]:
        """The diagnosis' remedies in words, generated from the config changes they make
        on this run's config (:mod:`medsight_ray.health.remedies`): the words a person
        reads and the changes ``--remedies`` applies cannot differ. A remedy the config
        already holds is left out. Without the run's config (a replay), none."""
        from medsight_ray.health.remedies import Remedy, plan

        if self.config is None:
            return ()
        default = type(self.config)()  # a stage's config class: its defaults are the stage's
        return tuple(step.words(self.config) for step in plan(name, evidence, self.config, default)
                     if not isinstance(step, Remedy) or step.applicable(self.config))

    def fired(self, name: str) -> bool:
        """Has rule ``name`` fired in this run?"""
        return any(d.rule == name for d in self.diagnoses)

    def on_step(self, loss: float, grad_norm: float) -> bool:
        """See one optimiser step; returns True when the epoch must stop now: a fatal
        step rule has fired, and every further step of the epoch would be spent on a run
        that is already condemned (a fatal diagnosis at step 4 of 200 saves 196 steps)."""
        if not self.cfg.enabled:
            return False
        self.state.steps += 1
        self.state.skip_streak = 0
        for name, rule_fn in STEP_RULES.items():
            rule = self._rule(name)
            if not rule.enabled or self.fired(name):
                continue
            found = rule_fn(rule, self.state, loss, grad_norm)
            if found is not None:
                self._fire(name, *found, step=self.state.steps)
        return any(d.severity == "fatal" for d in self.diagnoses if d.step)

    def on_skipped_step(self, scale: float) -> bool:
        """See one optimiser step that float16's GradScaler skipped (its scaled
        gradients overflowed; ``scale`` is its loss scale after halving). Such a step is
        not judged by the step rules (an overflow under dynamic loss scaling is by
        design, not a non-finite run); only ``loss_scale_collapse`` reads it. Returns
        True when the epoch must stop now."""
        if not self.cfg.enabled:
            return False
        self.state.steps += 1
        self.state.skipped += 1
        self.state.skip_streak += 1
        for name, rule_fn in SKIPPED_STEP_RULES.items():
            rule = self._rule(name)
            if rule.enabled and not self.fired(name):
                found = rule_fn(rule, self.state, scale)
                if found is not None:
                    self._fire(name, *found, step=self.state.steps)
        return any(d.severity == "fatal" for d in self.diagnoses if d.step)

    def on_start(self, metrics: dict[str, Any]) -> None:
        """See the untrained model's (gathered) validation metrics, measured before the
        first step: the run's own start, which the epoch rules compare with. Its primary
        metric is kept as ``objective``."""
        scalars = {k: float(v) for k, v in metrics.items()
                   if isinstance(v, (int, float)) and not isinstance(v, bool)}
        # The class shares it predicted, too: a collapse is what training did to them.
        shares = {k: metrics[k] for k in ("pred_histogram",) if isinstance(metrics.get(k), dict)}
        self.start = {**scalars, **shares, "objective": scalars.get(self.primary, float("nan"))}
        if self.config is not None:
            from medsight_ray.health.remedies import pretrained

            # Whether the run fine-tunes a pretrained backbone: its start is its knowledge.
            self.start["pretrained"] = float(pretrained(self.config))

    def on_epoch(self, epoch: int, train: dict[str, Any], metrics: dict[str, Any]) -> list[Diagnosis]:
        """See one epoch's (gathered) metrics; returns the diagnoses new this epoch (the
        epoch rules'; the step rules' of this epoch are in :meth:`epoch_diagnoses`)."""
        self.epoch = epoch
        new = self._judge_epoch(epoch, train, metrics)
        self.epoch = epoch + 1  # the next steps belong to the next epoch
        return new

    def epoch_diagnoses(self, epoch: int) -> list[Diagnosis]:
        """Every diagnosis stamped with 0-based ``epoch``, step rules' first."""
        return sorted((d for d in self.diagnoses if d.epoch == epoch + 1), key=lambda d: d.step == 0)

    def _judge_epoch(self, epoch: int, train: dict[str, Any], metrics: dict[str, Any]) -> list[Diagnosis]:
        before = len(self.diagnoses)
        if not self.cfg.enabled:
            return []
        self.history.append({"epoch": epoch + 1, "train": train, "metrics": metrics,
                             "objective": metrics.get(self.primary, float("nan"))})
        if self.should_stop():
            # A fatal step rule halted this epoch: the verdict is in, and signals of a
            # truncated epoch would only add second opinions to the stop reason.
            return []
        # Epochs that trained only part of what later epochs train (a frozen backbone's
        # head-only start, ``fit/warmup``) are a warm-up, not the model: the epoch rules
        # neither judge them nor read them, and each rule's grace counts from their end
        # (measured: a head on a frozen random backbone called every image one class at
        # chance AUC for its 2-3 frozen epochs, then reached F1 0.67-0.78 once unfrozen).
        judged_history = [h for h in self.history if not h["train"].get("fit/warmup")]
        for name, rule_fn in EPOCH_RULES.items():
            rule = self._rule(name)
            if not rule.enabled or self.fired(name):
                continue
            judged = (len(judged_history) > rule.grace and self.state.steps >= rule.min_steps
                      and judged_history[-1] is self.history[-1])
            found = rule_fn(rule, judged_history, start=self.start) if judged else None
            self._streaks[name] = self._streaks.get(name, 0) + 1 if found else 0
            if found and self._streaks[name] >= rule.patience_for(found[0]):
                self._fire(name, *found, step=0)
        return self.diagnoses[before:]

    def not_judged(self) -> dict[str, str]:
        """The enabled rules that have not yet had a run long enough to judge it, and
        what each needs, e.g. ``{"not_learning": "3 judged epochs and 30 steps"}``: a
        rule that stayed quiet because it never looked is not a rule that found nothing.
        Step rules count steps; epoch rules count the epochs past their grace that are
        not a warm-up, and steps."""
        if not self.cfg.enabled:
            return {}
        judged = sum(not h["train"].get("fit/warmup") for h in self.history)
        out = {}
        for name in (*STEP_RULES, *EPOCH_RULES):
            rule = self._rule(name)
            if not rule.enabled or self.fired(name):
                continue
            if name in STEP_RULES:
                needed = rule.grace + rule.patience
                if self.state.steps < needed:
                    out[name] = f"{needed} steps"
                continue
            epochs, steps = rule.epochs_needed(), rule.min_steps
            if judged < epochs or self.state.steps < steps:
                out[name] = " and ".join([f"{epochs} judged epoch{'s' * (epochs > 1)}"]
                                         + ([f"{steps} steps"] if steps else []))
        return out

    def should_stop(self) -> bool:
        """True once a fatal diagnosis was made."""
        return any(d.severity == "fatal" for d in self.diagnoses)

    def state_dict(self) -> dict[str, Any]:
        """Everything the monitor has seen and decided, as plain data (checkpointed with
        every epoch, so that a restarted worker group continues where it was)."""
        return {"epoch": self.epoch, "step_state": asdict(self.state), "streaks": dict(self._streaks),
                "history": self.history, "diagnoses": [d.to_dict() for d in self.diagnoses], "start": self.start}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Continue from :meth:`state_dict` (grace counts, streaks, history, diagnoses)."""
        self.epoch = int(state["epoch"])
        self.state = StepState(**state["step_state"])
        self._streaks = {k: int(v) for k, v in state["streaks"].items()}
        self.history = list(state["history"])
        self.start = state.get("start")
        self.diagnoses = [Diagnosis(**{**d, "causes": tuple(d["causes"]), "remedies": tuple(d["remedies"])})
                          for d in state["diagnoses"]]

    def report(self) -> dict[str, float]:
        """Flat metrics for ``ray.train.report`` (and so for Tune and the dashboard)."""
        out = {"health/fatal": float(self.should_stop()), "health/diagnoses": float(len(self.diagnoses))}
        for d in self.diagnoses:
            out[f"health/rule/{d.rule}"] = 1.0
        return out


def with_rule(cfg: HealthConfig, name: str, **changes: Any) -> HealthConfig:
    """``cfg`` with rule ``name`` changed (e.g. ``enabled=False``)."""
    return replace(cfg, **{name: replace(getattr(cfg, name), **changes)})
