"""Load a script of ``bench/`` as a module (the benches are scripts, not a package)."""

from __future__ import annotations

import importlib.util
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[3]


def load_bench(name: str) -> Any:
    """``bench/<name>.py`` as a fresh module."""
    spec = importlib.util.spec_from_file_location(f"{name}_bench", ROOT / "bench" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module
