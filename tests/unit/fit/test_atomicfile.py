"""State files are replaced whole: a writer killed or failing mid-write leaves the previous
file as it was (what ``tune --resume`` and ``report`` read)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from medsight_ray import atomicfile

_CHILD = """
import sys, time
from medsight_ray import atomicfile
with atomicfile.replacing(sys.argv[1]) as tmp:
    with open(tmp, "w") as fh:
        fh.write('{"half": ')
        fh.flush()
        print("mid-write", flush=True)
        time.sleep(600)
"""


def test_a_writer_killed_mid_write_leaves_the_previous_file(tmp_path: Path) -> None:
    state = tmp_path / "stage_result.json"
    atomicfile.write_text(state, '{"epochs": 3}')
    child = subprocess.Popen([sys.executable, "-c", _CHILD, str(state)], stdout=subprocess.PIPE, text=True,
                             cwd=Path(__file__).resolve().parents[3])
    try:
        assert child.stdout is not None and child.stdout.readline().strip() == "mid-write"
        assert any(p.name.startswith(".stage_result.json.") for p in tmp_path.iterdir())
    finally:
        child.kill()
        child.wait(timeout=60)
    assert state.read_text() == '{"epochs": 3}'


def test_an_exception_mid_write_leaves_the_previous_file_and_no_temporary(tmp_path: Path) -> None:
    state = tmp_path / "summary.json"
    atomicfile.write_text(state, "old")
    with pytest.raises(RuntimeError), atomicfile.replacing(state) as tmp:
        tmp.write_text("new, half")
        raise RuntimeError("killed")
    assert state.read_text() == "old" and [p.name for p in tmp_path.iterdir()] == ["summary.json"]
    atomicfile.write_bytes(state, b"new")
    assert state.read_bytes() == b"new" and [p.name for p in tmp_path.iterdir()] == ["summary.json"]
