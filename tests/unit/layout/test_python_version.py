"""One supported Python range, said the same everywhere and met by the interpreter that
runs the suite (the suite reads TOML with 3.11's ``tomllib``)."""

from __future__ import annotations

import re
import sys
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[3]


def test_python_311_or_newer_is_required_everywhere_and_met() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())
    assert project["project"]["requires-python"] == ">=3.11"
    assert project["tool"]["ruff"]["target-version"] == "py311"
    assert "Python 3.11 or newer" in (ROOT / "README.md").read_text()
    assert not re.search(r"Python 3\.(?:[0-9]|10)\b", (ROOT / "README.md").read_text())
    assert sys.version_info >= (3, 11)
