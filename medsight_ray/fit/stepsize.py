"""How far one optimiser step moves the trainable weights, measured on the step itself.

The epoch's displacement over its step count (:func:`medsight_ray.fit.loop.update_ratio`)
depends on how many steps the epoch holds: noisy steps partly cancel, so the same run
reads lower on a larger dataset. This measures single steps instead:
‖w_after − w_before‖ / ‖w_before‖ of a step, averaged over a few steps spread through
the epoch. It depends on the learning rate, the optimiser and the gradients, not on the
number of steps. Sampling keeps it cheap: a sampled step costs one copy of the
trainable weights.
"""

from __future__ import annotations

import math

import torch
from torch import nn

#: Steps measured per epoch, spread evenly: enough for a stable mean, few enough that
#: the copies cost nothing next to the forward and backward passes.
SAMPLES = 16


class StepSize:
    """Per-step relative weight change over sampled steps of one epoch.

    Call :meth:`before` just before an optimiser step and :meth:`after` just after it;
    only every ``stride``-th step is measured (``stride`` from the epoch's expected steps).
    """

    def __init__(self, expected_steps: int) -> None:
        self.stride = max(1, expected_steps // SAMPLES)
        self.step = 0
        self.ratios: list[float] = []
        self._before: list[torch.Tensor] | None = None

    def before(self, params: list[nn.Parameter]) -> None:
        """Snapshot the weights if this step is one of the sampled ones."""
        self._before = [p.detach().clone() for p in params] if self.step % self.stride == 0 and params else None

    def after(self, params: list[nn.Parameter]) -> None:
        """Record the step's relative weight change (if sampled)."""
        if self._before is not None:
            now = [p.detach() for p in params]
            moved = torch.linalg.vector_norm(torch.stack(torch._foreach_norm(torch._foreach_sub(now, self._before))))
            scale = torch.linalg.vector_norm(torch.stack(torch._foreach_norm(self._before)))
            ratio = float(moved) / float(scale) if float(scale) > 0 else math.nan
            if math.isfinite(ratio):
                self.ratios.append(ratio)
            self._before = None
        self.step += 1

    def mean(self) -> float:
        """The mean relative change of the sampled steps (NaN when none was measured)."""
        return float(sum(self.ratios) / len(self.ratios)) if self.ratios else math.nan
