"""The grading stage's model, optimiser and context, shared by the step-level benchmarks."""

from __future__ import annotations

from typing import Any

import torch

from medsight_ray.config import apply_overrides
from medsight_ray.data.schema import CATARACT_CLASSES, DatasetInfo
from medsight_ray.fit.stage import Context
from medsight_ray.stages.registry import get_stage


def grading_step(size: int, info: DatasetInfo | None = None) -> tuple[Any, Any, Any, list, Any, Context]:
    """(stage, config, model, trainable params, AdamW optimiser, context) of a resnet10t
    grader at ``size`` px, class counts in the cataract data's proportions."""
    stage = get_stage("grading")
    cfg = apply_overrides(stage.config_cls(), ["model.backbone.name=resnet10t", f"data.image_size={size}"])
    info = info or DatasetInfo("grading", "RGB", class_names=CATARACT_CLASSES)
    model = stage.build_model(cfg, info)
    model.set_trainable(stage.trainable_parts(cfg, 0))
    params = [p for p in model.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(params, lr=1e-3)
    ctx = Context(cfg, info, {"class_counts": [41, 13, 33, 13], "rows": 100}, torch.device("cpu"), model)
    stage.prepare(ctx)
    return stage, cfg, model, params, opt, ctx
