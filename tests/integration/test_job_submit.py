"""`ray start --head` on 127.0.0.1, then `ray job submit --working-dir . -- python -m
medsight_ray.tune ...`: the documented cluster path, end to end on this machine."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import grading_space

ROOT = Path(__file__).resolve().parents[2]

SPACE = grading_space(3.0e-2)


@pytest.mark.timeout(420)
def test_sweep_runs_as_a_ray_job_on_a_loopback_head(synth_dir, tmp_path: Path) -> None:
    (tmp_path / "space.yaml").write_text(SPACE)
    out = tmp_path / "sweep"
    env = {k: v for k, v in os.environ.items() if k != "RAY_ADDRESS"} | {"PY": sys.executable}
    proc = subprocess.run(
        ["bash", str(ROOT / "cluster" / "local_job.sh"), "--space", str(tmp_path / "space.yaml"),
         "--data", str(synth_dir("grading", rows=90)), "--out", str(out)],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=400)
    log = proc.stdout + proc.stderr
    assert proc.returncode == 0, log[-4000:]
    assert re.search(r"Ray head up; dashboard at http://127\.0\.0\.1:\d+\n", log)
    assert "succeeded" in log and "== sweep summary" in log
    # The job's console (what `ray job logs` shows) is for people; Ray's output is in OUT/logs.
    assert [line for line in log.splitlines() if "epoch 1/1 loss" in line][0].endswith("health ok")
    assert len([line for line in log.splitlines() if "epoch 1/1 loss" in line]) == 1
    assert "-- grading/grading: trial" in log and "1/1 trials done" in log
    for noise in ("RayTrainWorker", "Reporting training result", "Checkpoint successfully"):
        assert noise not in log, noise
    assert "RayTrainWorker" in (out / "logs" / "console.log").read_text()
    summary = json.loads((out / "summary.json").read_text())
    (trial,) = summary["stages"][0]["trials"]
    assert trial["status"] == "completed" and trial["config"] == {"optim.lr": 3.0e-2}
    assert summary["final_model"] and (out / "report" / "report.md").is_file()
