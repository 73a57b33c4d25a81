"""Named lr scales, schedules that hold at their end, class-aware resampling rates."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pytest
import torch

from medsight_ray.data.pipeline import resample
from medsight_ray.errors import ConfigError
from medsight_ray.fit.config import OptimConfig
from medsight_ray.fit.optim import Schedule, build_optimizer
from medsight_ray.stages.grading import SamplerConfig, resample_rates


def test_group_lrs_are_named_scales_of_the_base_lr() -> None:
    a, b = torch.nn.Linear(2, 2), torch.nn.Linear(2, 2)
    opt = build_optimizer({"backbone": list(a.parameters()), "head": list(b.parameters())},
                          OptimConfig(lr=1e-4, backbone_lr_scale=0.01, head_lr_scale=0.2))
    assert [g["lr"] for g in opt.param_groups] == pytest.approx([1e-6, 2e-5])  # the seeds' stage-1 lrs
    with pytest.raises(ConfigError, match="optim.decoder_lr_scale"):
        build_optimizer({"decoder": list(a.parameters())}, OptimConfig())


@pytest.mark.parametrize("name", ["cosine", "onecycle"])
def test_schedules_warm_up_decay_and_hold_past_the_estimate(name: str) -> None:
    p = torch.nn.Parameter(torch.zeros(1))
    opt = build_optimizer({"head": [p]}, OptimConfig(lr=1.0, scheduler=name, warmup_fraction=0.2))
    sched = Schedule(opt, OptimConfig(lr=1.0, scheduler=name, warmup_fraction=0.2), total_steps=20)
    lrs = []
    for _ in range(30):  # 10 more steps than estimated: no error, no restart
        lrs.append(opt.param_groups[0]["lr"])
        opt.step()
        sched.step()
    peak = int(np.argmax(lrs))
    assert 0 < peak < 15 and lrs[0] < lrs[peak] and lrs[19] < 0.05 * lrs[peak]
    assert lrs[25] == lrs[29]


def test_resampling_rates_balance_classes_with_fractions() -> None:
    counts = [410, 130, 330, 130]
    assert resample_rates(SamplerConfig(), counts) is None
    rates = resample_rates(SamplerConfig(balanced=True, class_fractions=(1, 1, 1, 0.33)), counts)
    expected = np.array(rates) * counts
    assert expected.sum() == pytest.approx(1000)
    assert expected[0] == pytest.approx(expected[1]) and expected[3] == pytest.approx(0.33 * expected[0])
    table = pa.table({"label": [0] * 410 + [1] * 130 + [2] * 330 + [3] * 130})
    out = np.bincount(resample(table, rates, np.random.default_rng(0))["label"].to_numpy(), minlength=4)
    assert np.allclose(out, expected, rtol=0.15)
    with pytest.raises(ConfigError, match="4 non-negative"):
        resample_rates(SamplerConfig(balanced=True, class_fractions=(1, 1)), counts)
