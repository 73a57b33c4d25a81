"""The untrained model as later epochs will see it: BatchNorm statistics of the data.

An untrained network's BatchNorm layers hold their initial running statistics (mean 0,
variance 1), which eval mode uses as they are. After one epoch of training they hold
the data's statistics, whatever the learning rate. So the eval-mode outputs of step 0
and of epoch 1 differ by the statistics alone, even when the weights barely moved
(measured on real digits: AUC 0.66 before the first step, 0.45 after an epoch at lr
1e-7, whose weights moved 1e-7 of their norm). Measuring the start with the data's
statistics makes it comparable to the epochs that follow.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from contextlib import contextmanager

import numpy as np
import torch
from torch import nn
from torch.optim.swa_utils import update_bn

from medsight_ray.fit.distributed import all_gather


def _batchnorm_buffers(model: nn.Module) -> dict[str, torch.Tensor]:
    """Every BatchNorm running statistic of ``model``, by buffer name."""
    out = {}
    for name, module in model.named_modules():
        if isinstance(module, nn.modules.batchnorm._BatchNorm) and module.track_running_stats:
            for buffer in ("running_mean", "running_var", "num_batches_tracked"):
                out[f"{name}.{buffer}"] = getattr(module, buffer)
    return out


@contextmanager
def data_statistics(model: nn.Module, images: Iterable[torch.Tensor], world_size: int = 1) -> Iterator[None]:
    """Inside the block, ``model``'s BatchNorm layers hold the running statistics of
    ``images`` (a cumulative average over every batch, PyTorch's ``update_bn``), averaged
    across the ``world_size`` workers; on leaving, their previous statistics come back,
    and so does the random number generators' state, so training is exactly as without
    the block. (``update_bn`` runs the model in train mode, where dropout draws from
    the global generator: the grader's dropout made a run with the monitor train a
    different curve from the same run without it, measured in ``bench/zoo_sweep.py``.)
    A model without BatchNorm is left as it is."""
    buffers = _batchnorm_buffers(model)
    if not buffers:
        yield
        return
    saved = {k: v.detach().clone() for k, v in buffers.items()}
    cuda = sorted({p.device.index or 0 for p in model.parameters() if p.device.type == "cuda"})
    with torch.random.fork_rng(devices=cuda), _restored(buffers, saved):
        with torch.no_grad():
            # BatchNorm cannot take statistics of one image in train mode (the last batch
            # of a split may hold one); a batch of one adds nothing to them anyway. The
            # shard is read to its end: Ray Data's split iterators advance together, and
            # one abandoned halfway would hold the other workers' next pass.
            update_bn((x for x in images if x.shape[0] > 1), model)
            if world_size > 1:
                # Every worker judges with the same statistics: the mean of the workers'.
                local = {k: v.detach().cpu().double().numpy() for k, v in buffers.items()
                         if not k.endswith("num_batches_tracked")}
                mean = {k: np.mean([g[k] for g in all_gather(local)], axis=0) for k in local}
                for k, value in mean.items():
                    buffers[k].copy_(torch.from_numpy(value).to(buffers[k]))
        yield


@contextmanager
def _restored(buffers: dict[str, torch.Tensor], saved: dict[str, torch.Tensor]) -> Iterator[None]:
    """On leaving, ``buffers`` get the ``saved`` values back (however the block ends)."""
    try:
        yield
    finally:
        with torch.no_grad():
            for k, value in saved.items():
                buffers[k].copy_(value)
