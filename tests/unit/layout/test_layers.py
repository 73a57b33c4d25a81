"""Packages import one way (README, "Layout"): the ``[tool.importlinter]`` contract holds.

``lint-imports`` builds the import graph with grimp, imports inside functions included,
so a lazy import that goes up a layer breaks the contract as surely as a top-level one.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[3]


def _lint(root: Path) -> subprocess.CompletedProcess:
    exe = shutil.which("lint-imports", path=str(Path(sys.executable).parent)) or "lint-imports"
    return subprocess.run([exe, "--no-cache", "--no-logo"], cwd=root, capture_output=True, text=True, timeout=120,
                          env={"PYTHONPATH": str(root), "PATH": str(Path(sys.executable).parent)})


def test_the_layering_contract_is_kept() -> None:
    run = _lint(ROOT)
    assert run.returncode == 0, run.stdout + run.stderr
    assert "1 kept, 0 broken" in run.stdout


def test_an_import_up_a_layer_inside_a_function_breaks_it(tmp_path: Path) -> None:
    """The check can fail: a copy of the package whose data layer imports the fit loop
    lazily, inside a function, breaks the contract."""
    copy = tmp_path / "repo"
    shutil.copytree(ROOT / "medsight_ray", copy / "medsight_ray", ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(ROOT / "pyproject.toml", copy / "pyproject.toml")
    boxes = copy / "medsight_ray" / "data" / "boxes.py"
    late = "\n\ndef _late() -> None:\n    from medsight_ray.fit import loop  # noqa: F401\n"
    boxes.write_text(boxes.read_text() + late)
    run = _lint(copy)
    assert run.returncode != 0
    assert "medsight_ray.data is not allowed to import medsight_ray.fit" in run.stdout
    assert "medsight_ray.data.boxes -> medsight_ray.fit.loop" in run.stdout
