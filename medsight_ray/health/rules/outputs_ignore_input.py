"""The ``outputs_ignore_input`` health rule: its settings, check, causes and remedies."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from medsight_ray.health.remedies import Advice, Evidence, Step
from medsight_ray.health.rule import Finding, Rule, RuleConfig, Start, register
from medsight_ray.health.signals import finite


@dataclass(frozen=True)
class OutputsIgnoreInputConfig(RuleConfig):
    """``outputs_ignore_input``: the model's answer cannot depend on the image, because
    the images are all the same or because the untrained model already gave every image
    the same answer. No config change cures it: the advice is to look at the inputs.

    Attributes:
        threshold: spread of the validation images (``input_spread``: the standard
            deviation across images of fixed random projections of their pixels, over
            their root mean square) below which the images are the same pixels. A ratio
            that does not depend on the pixels' scale: 0 for identical images, near 1 for
            natural ones (measured: 0.84 on real handwritten digits, raw; 0.99
            normalised), 0.012 for one gray image under noise of a thousandth.
        output_spread: largest standard deviation across images of any output's
            probability (``score_spread``) below which the outputs are identical; it must
            hold before training (``health.baseline_eval``) and now.
        grace: epochs before the rule may fire (0: from the first epoch).
    """

    threshold: float = 1e-3
    output_spread: float = 1e-4


@register
class OutputsIgnoreInput(Rule):
    """outputs_ignore_input: see :meth:`check`; its settings: :class:`OutputsIgnoreInputConfig`."""

    name = "outputs_ignore_input"
    kind = "epoch"
    Config = OutputsIgnoreInputConfig
    causes = (
        (
            'inputs that carry no information: every image decodes to the same pixels (a broken decode, blank or '
            'constant exports, a wrong window)'
        ),
        (
            'a part between the input and the output that passes nothing on (a frozen layer, an input multiplied '
            'by zero)'
        ),
    )
    fires_when = (
        'from epoch 1: the validation images are the same pixels (`input_spread`, the spread across images of '
        'fixed random projections of their pixels over their magnitude, < 0.001), or every output gave every '
        "image the same probability (< 0.0001 apart) before the first step and still does. An untrained network's"
        ' answers vary with its input, so no learning rate is the cause; advice only: look at the inputs (`data '
        'check` counts byte-identical images)'
    )
    origin = 'a broken decode: every image one gray image'

    @staticmethod
    def check(cfg: OutputsIgnoreInputConfig, history: list[dict[str, Any]], start: Start = None) -> Finding | None:
        """The model's answer cannot depend on the image: the validation images are the same
        pixels (their spread, ``input_spread``, below ``threshold``: a broken decode, blank
        exports), or the outputs were identical across images (``score_spread`` below
        ``output_spread``) already in the untrained model and still are. An untrained
        network's outputs vary with its input (measured at step 0: 0.004-0.09 on synthetic
        and real images, outputs identical only for identical inputs), so outputs constant
        before any step were not killed by training: no learning rate is the cause, and
        every rule that reads the outputs (a metric at chance, one class predicted, dead
        outputs) would name one."""
        m = history[-1]["metrics"]
        spread = finite(m.get("input_spread"))
        if spread is not None and spread < cfg.threshold:
            return ({"input_spread": spread},
                    f"the validation images differ by < {cfg.threshold:g} of their magnitude")
        now, then = finite(m.get("score_spread")), finite((start or {}).get("score_spread"))
        if now is not None and then is not None and max(now, then) < cfg.output_spread:
            return ({"score_spread": now, "start_score_spread": then},
                    f"every output's probability varied by < {cfg.output_spread:g} across images before training "
                    f"and still does")
        return None

    @staticmethod
    def remedies(evidence: Evidence, cfg: Any, default: Any) -> list[Step]:
        return [Advice("look at the images the model is given: 'python -m medsight_ray.data check --data URI' "
                       "counts byte-identical images; open a few decoded ones (window, bit depth, decode errors)"),
                Advice("check that every part between the input and the output trains or passes the input on")]
