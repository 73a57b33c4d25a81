"""Model checkpoints: state dicts plus the config and dataset metadata that made them.

A checkpoint directory holds ``model.pt`` (what inference and the next stage need),
``train_state.pt`` (optimiser and schedule, to resume after a failure) and
``history.json`` (metrics of every epoch so far). Both ``.pt`` files hold only
tensors and plain data and load with ``torch.load(weights_only=True)``.
"""

from __future__ import annotations

import io
import json
import shutil
from pathlib import Path
from typing import Any

import torch

from medsight_ray import atomicfile
from medsight_ray.errors import ConfigError
from medsight_ray.models.safe_load import safe_load

FORMAT = "medsight_ray/1"
MODEL_FILE = "model.pt"
STATE_FILE = "train_state.pt"
HISTORY_FILE = "history.json"


def save_checkpoint(directory: Path, model_state: dict[str, torch.Tensor], meta: dict[str, Any],
                    train_state: dict[str, Any] | None, history: list[dict[str, Any]],
                    records: dict[str, Any] | None = None) -> None:
    """Write a checkpoint directory; ``meta`` must hold plain data only. ``records`` maps
    a file name to plain data written as JSON beside the model (the run's outcome, the
    health monitor's state)."""
    directory.mkdir(parents=True, exist_ok=True)
    with atomicfile.replacing(directory / MODEL_FILE) as tmp:
        torch.save({"format": FORMAT, **meta, "state_dict": model_state}, tmp)
    if train_state is not None:
        with atomicfile.replacing(directory / STATE_FILE) as tmp:
            torch.save(train_state, tmp)
    atomicfile.write_text(directory / HISTORY_FILE, json.dumps(history, default=float))
    for name, data in (records or {}).items():
        atomicfile.write_text(directory / name, json.dumps(data, default=float))


def _open(path: str | Path, name: str) -> tuple[Any, str] | None:
    """(filesystem, path of ``name``) for a file or a checkpoint directory holding it,
    on a local path or a URI; None when there is nothing there."""
    import pyarrow.fs as pafs

    from medsight_ray.data.store import resolve

    fs, where = resolve(path)
    info = fs.get_file_info(where)
    if info.type == pafs.FileType.Directory:
        where = f"{where.rstrip('/')}/{name}"
        info = fs.get_file_info(where)
    return (fs, where) if info.type == pafs.FileType.File else None


def load_model_file(path: str | Path) -> dict[str, Any]:
    """Read ``model.pt`` (or the ``model.pt`` inside a checkpoint directory), from a local
    path or a URI (``s3://``, ``gs://``, ``file://``).

    Raises:
        ConfigError: missing, corrupt, or not a medsight_ray checkpoint.
    """
    found = _open(path, MODEL_FILE)
    if found is None:
        raise ConfigError("checkpoint does not exist", where=str(path),
                          expected=f"a {MODEL_FILE} file or a checkpoint directory holding one", got="nothing there")
    fs, where = found
    with fs.open_input_file(where) as fh:
        data = safe_load(io.BytesIO(fh.read()), "a medsight_ray checkpoint", where)
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        got = data.get("format") if isinstance(data, dict) else type(data).__name__
        raise ConfigError("not a medsight_ray checkpoint", where=where, expected=f"format {FORMAT!r}",
                          got=repr(got))
    return data


def copy_model_file(checkpoint: str | Path, destination: Path) -> None:
    """Copy a checkpoint's ``model.pt`` (local path or URI) to the local ``destination``,
    whole or not at all.

    Raises:
        ConfigError: the checkpoint holds no model file.
    """
    found = _open(checkpoint, MODEL_FILE)
    if found is None:
        raise ConfigError("checkpoint does not exist", where=str(checkpoint),
                          expected=f"a {MODEL_FILE} file or a checkpoint directory holding one", got="nothing there")
    fs, where = found
    with fs.open_input_stream(where) as source, atomicfile.replacing(destination) as tmp, open(tmp, "wb") as sink:
        shutil.copyfileobj(source, sink, 1 << 20)


def read_json(directory: str | Path, name: str) -> Any:
    """A JSON file stored beside a checkpoint's model (local path or URI), or None."""
    found = _open(directory, name)
    if found is None:
        return None
    fs, where = found
    with fs.open_input_file(where) as fh:
        return json.loads(fh.read())


def read_history(directory: str | Path) -> list[dict[str, Any]]:
    """The per-epoch metrics stored beside a checkpoint (empty if none)."""
    return read_json(directory, HISTORY_FILE) or []
