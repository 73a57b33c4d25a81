"""Mixed precision on the AMP path: a step float16's GradScaler skipped is counted, never
judged non-finite; the scale collapsing is its own diagnosis, whose remedy (full
precision) removes the skipped steps. The path runs on CPU (``torch.autocast("cpu")``
with float16 and ``GradScaler("cpu")``), as GPU runs take it."""

from __future__ import annotations

import torch
from torch import nn

from medsight_ray.config import apply_overrides
from medsight_ray.health.config import HealthConfig
from medsight_ray.health.monitor import HealthMonitor
from medsight_ray.health.remedies import next_remedy, plan
from medsight_ray.stages.grading import GradingConfig
from tests.unit.fit.test_accumulation import _trainer


def _monitor() -> HealthMonitor:
    return HealthMonitor(HealthConfig(), "grading/grading", "f1_macro", GradingConfig())


def test_scalers_routine_overflows_are_not_a_diagnosis() -> None:
    """Dynamic loss scaling as designed: an overflow halves the scale, 2,000 clean steps
    double it, and it overflows again, for as long as the run lasts."""
    monitor, scale = _monitor(), 65536.0
    for _ in range(3):
        scale /= 2
        assert monitor.on_skipped_step(scale) is False
        for _ in range(2000):
            assert monitor.on_step(0.7, 2.0) is False
        scale *= 2
    assert monitor.diagnoses == [] and monitor.state.skipped == 3


def test_a_non_finite_loss_is_still_non_finite() -> None:
    monitor = _monitor()
    monitor.on_skipped_step(32768.0)
    assert monitor.on_step(float("nan"), float("inf")) is True
    assert [d.rule for d in monitor.diagnoses] == ["non_finite"]


def test_a_collapsing_scale_fires_below_1_and_a_long_run_of_skips_fires_too() -> None:
    monitor, scale = _monitor(), 65536.0
    fired_at = None
    for step in range(1, 40):
        scale /= 2
        if monitor.on_skipped_step(scale):
            fired_at = step
            break
    (d,) = monitor.diagnoses
    assert fired_at == 17 and d.rule == "loss_scale_collapse" and d.severity == "fatal"
    assert d.evidence["loss_scale"] == 0.5 and d.evidence["skipped_in_a_row"] == 17
    pinned = _monitor()  # a scale that never falls below 1, but every step skipped
    results = [pinned.on_skipped_step(8.0) for _ in range(50)]
    assert results == [False] * 49 + [True] and pinned.diagnoses[0].evidence["skipped_in_a_row"] == 50


def _skipped_steps(amp: bool, init_scale: float) -> int:
    """Train a small conv net 12 steps on the fit loop's optimiser step, on CPU, with
    mixed precision (float16, GradScaler) or without; returns the skipped steps."""
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(1, 4, 3), nn.Flatten(), nn.Linear(4 * 6 * 6, 2))
    trainer = _trainer(model, 1)
    trainer.cfg = apply_overrides(trainer.cfg, [f"fit.amp={str(amp).lower()}", "fit.amp_on_cpu=true",
                                                f"fit.amp_init_scale={init_scale}"])
    trainer.monitor = _monitor()
    trainer.use_amp = amp
    trainer.scaler = torch.amp.GradScaler("cpu", init_scale=init_scale, enabled=amp)
    x, y = torch.randn(8, 1, 8, 8), torch.randint(0, 2, (8,))
    params = list(model.parameters())
    for _ in range(12):
        with torch.autocast("cpu", dtype=torch.float16, enabled=amp):
            loss = nn.functional.cross_entropy(model(x).float(), y)
        trainer.scaler.scale(loss).backward()
        trainer._optimizer_step(params, float(loss.detach()))
    assert "non_finite" not in [d.rule for d in trainer.monitor.diagnoses]
    return trainer.monitor.state.skipped


def test_overflowing_steps_are_skipped_and_counted_not_judged() -> None:
    skipped = _skipped_steps(amp=True, init_scale=2.0 ** 24)
    assert 1 <= skipped < 12  # the scale fell to where float16 holds the gradients, then the run trained


def test_the_remedy_for_a_collapsed_scale_removes_the_skipped_steps() -> None:
    """Evidence first: a scale that starts far too high keeps every step skipped (the
    rule fires); full precision, the remedy, skips none."""
    assert _skipped_steps(amp=True, init_scale=2.0 ** 60) >= 10
    remedy = next_remedy(plan("loss_scale_collapse", {}, GradingConfig(), GradingConfig()), GradingConfig())
    assert remedy is not None and remedy.overrides(GradingConfig()) == ["fit.amp=false"]
    cured = remedy.apply(GradingConfig())
    assert cured.fit.amp is False
    assert _skipped_steps(amp=cured.fit.amp, init_scale=2.0 ** 60) == 0
