"""Load backbone weights from a local checkpoint file.

Accepted: a bare state dict, or one wrapped under ``state_dict``, ``model``,
``model_ema`` or ``module`` (timm, torchvision, MAE and DDP checkpoints). Key prefixes
``module.``, ``backbone.``, ``encoder.`` and ``model.`` are stripped when that makes
more keys match. MAE pre-training checkpoints carry a decoder and a mask token; those
are dropped, as are classifier heads. Where shapes differ only by input channels
(RGB weights into a 1-channel model) the first conv is adapted with timm's
``adapt_input_conv``; a ViT position embedding of another grid is resampled with
timm's ``resample_abs_pos_embed``.

Files load with ``torch.load(weights_only=True)``: a checkpoint cannot run code.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import torch
from torch import nn

from medsight_ray.errors import ConfigError
from medsight_ray.models.safe_load import safe_load

WRAPPERS = ("state_dict", "model", "model_ema", "module")
PREFIXES = ("module.", "backbone.", "encoder.", "model.")
DROPPED = ("decoder", "mask_token", "head.", "fc.", "classifier.", "fc_norm.")


@dataclass
class LoadReport:
    """What a checkpoint load did. Lists hold parameter names."""

    path: str
    loaded: list[str] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)
    unexpected: list[str] = field(default_factory=list)
    dropped: list[str] = field(default_factory=list)
    adapted: list[str] = field(default_factory=list)

    def summary(self) -> str:
        """One paragraph for the log."""
        def names(xs: list[str]) -> str:
            return f"{len(xs)}" + (f" {xs[:6]}{' ...' if len(xs) > 6 else ''}" if xs else "")

        return (f"loaded {len(self.loaded)} tensors from {self.path}; missing {names(self.missing)}; "
                f"unexpected {names(self.unexpected)}; dropped (decoder/head) {len(self.dropped)}; "
                f"adapted {names(self.adapted)}")


def read_state_dict(path: str | Path) -> dict[str, torch.Tensor]:
    """Read a tensor dict from ``path`` (weights only), unwrapping common containers."""
    file = Path(path)
    if not file.is_file():
        raise ConfigError("pretrained file does not exist", where=str(path),
                          expected="a local checkpoint file (nothing is downloaded)", got="no such file")
    obj = safe_load(file, "a torch checkpoint of tensors")
    for _ in range(3):
        if isinstance(obj, dict):
            inner = next((obj[k] for k in WRAPPERS if isinstance(obj.get(k), dict)), None)
            if inner is not None:
                obj = inner
    tensors = {k: v for k, v in obj.items() if isinstance(v, torch.Tensor)} if isinstance(obj, dict) else {}
    if not tensors:
        raise ConfigError("checkpoint holds no tensors", where=str(path),
                          expected="a state dict of parameter tensors", got=f"a {type(obj).__name__}")
    return tensors


def _strip(state: dict[str, torch.Tensor], targets: set[str]) -> dict[str, torch.Tensor]:
    """Strip the prefixes, up to two deep, that make the most keys match ``targets``.
    Two deep together: one of our own final models nests the backbone's keys under
    ``backbone.model.``, and stripping ``backbone.`` alone matches nothing."""
    def stripped(keys: dict[str, torch.Tensor], prefix: str) -> dict[str, torch.Tensor]:
        return {k[len(prefix):] if prefix and k.startswith(prefix) else k: v for k, v in keys.items()}

    best = state
    for outer in ("", *PREFIXES):
        for inner in ("", *PREFIXES):
            cand = stripped(stripped(state, outer), inner)
            if len(targets & cand.keys()) > len(targets & best.keys()):
                best = cand
    return best


def load_pretrained(model: nn.Module, path: str | Path, in_chans: int) -> LoadReport:
    """Load ``path`` into ``model`` (non-strict) and say what matched.

    Raises:
        ConfigError: missing, unreadable or foreign file (no key matches the model).
    """
    from timm.layers import resample_abs_pos_embed
    from timm.models import adapt_input_conv

    own = model.state_dict()
    state = _strip(read_state_dict(path), set(own))
    report = LoadReport(str(path))
    usable: dict[str, torch.Tensor] = {}
    for key, value in state.items():
        if key not in own:
            (report.dropped if key.startswith(DROPPED) else report.unexpected).append(key)
            continue
        target = own[key]
        if value.shape != target.shape:
            if value.ndim == 4 and value.shape[0] == target.shape[0] and target.shape[1] == in_chans:
                value = adapt_input_conv(in_chans, value.float()).to(target.dtype)
                report.adapted.append(key)
            elif key.endswith("pos_embed") and value.ndim == 3 and hasattr(model, "patch_embed"):
                value = resample_abs_pos_embed(value, list(model.patch_embed.grid_size),
                                               num_prefix_tokens=getattr(model, "num_prefix_tokens", 1))
                report.adapted.append(key)
            if value.shape != target.shape:
                report.unexpected.append(f"{key} {tuple(value.shape)} vs {tuple(target.shape)}")
                continue
        usable[key] = value
    if not usable:
        raise ConfigError("checkpoint does not fit this backbone", where=str(path),
                          expected=f"parameter names like {list(own)[:3]}",
                          got=f"{len(state)} keys like {list(state)[:3]}",
                          fix="check backbone.name matches the architecture the checkpoint was trained with")
    model.load_state_dict(usable, strict=False)
    report.loaded = sorted(usable)
    report.missing = sorted(set(own) - set(usable))
    return report
