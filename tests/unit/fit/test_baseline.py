"""The untrained model is judged with the data's BatchNorm statistics, and training
goes on exactly as without the measurement."""

from __future__ import annotations

import torch
from torch import nn

from medsight_ray.fit.baseline import data_statistics


def _model() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Conv2d(1, 4, 3), nn.BatchNorm2d(4), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(),
                         nn.Linear(4, 2))


def test_inside_the_block_batchnorm_holds_the_datas_statistics_and_gets_its_own_back() -> None:
    """Images of mean 5: inside, the running mean of the conv outputs is their mean over
    every image (not the initial 0), eval-mode outputs change accordingly; outside, the
    initial statistics are back, bit for bit. A batch of one image is skipped, not an
    error (BatchNorm cannot take statistics of one image in train mode)."""
    model = _model().eval()
    images = [5 + torch.randn(8, 1, 12, 12) for _ in range(3)] + [5 + torch.randn(1, 1, 12, 12)]
    x = images[0]
    before = model(x).detach().clone()
    with data_statistics(model, iter(images)):
        bn = model[1]
        with torch.no_grad():
            expected = torch.cat([model[0](b) for b in images[:3]]).mean(dim=(0, 2, 3))
        assert torch.allclose(bn.running_mean, expected, atol=1e-4)
        assert not model.training
        assert not torch.allclose(model(x), before)
    assert torch.equal(model[1].running_mean, torch.zeros(4)) and torch.equal(model[1].running_var, torch.ones(4))
    assert torch.equal(model(x), before)


def test_a_model_without_batchnorm_is_left_as_it_is() -> None:
    model = nn.Sequential(nn.Flatten(), nn.Linear(4, 2)).eval()
    with data_statistics(model, iter([torch.randn(2, 4)])):
        pass
    assert not model.training


def test_training_draws_the_same_random_numbers_as_without_the_block() -> None:
    """``update_bn`` runs the model in train mode, where dropout draws from the global
    generator; without restoring it, a run with the monitor trained another curve than
    the same run without it (the grader's dropout, measured in bench/zoo_sweep.py)."""
    model = nn.Sequential(nn.Conv2d(1, 4, 3), nn.BatchNorm2d(4), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(),
                          nn.Dropout(0.5), nn.Linear(4, 2))
    images = [torch.randn(8, 1, 12, 12) for _ in range(3)]
    torch.manual_seed(7)
    expected = torch.rand(5)
    torch.manual_seed(7)
    with data_statistics(model, iter(images)):
        pass
    assert torch.equal(torch.rand(5), expected)
