"""``cluster/local_job.sh`` reads the job's final status whole.

``ray job status … | grep -q …`` under ``set -o pipefail`` fails when grep exits at
the first match and ``ray`` then writes into the closed pipe: a job that succeeded
made the script exit 1. Here a stand-in ``ray`` prints the success line and then more
than a pipe holds, which makes that race certain.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parents[3]

FAKE_RAY = r"""#!/usr/bin/env bash
case "$1 $2" in
  "start --head"*) exec sleep 300 ;;
  "job list") exit 0 ;;
  "job submit") exit 0 ;;
  "job logs") echo "the job's own output"; exit 0 ;;
  "job status")
    id="${@: -1}"
    echo "Job '$id' $STATUS_WORD"
    # Far more than a pipe's buffer after the line grep matches; like the real CLI,
    # fail when the reader has gone (the real one raises BrokenPipeError).
    yes "Status for job '$id': details" | head -n 20000 || exit 1
    exit 0 ;;
esac
echo "fake ray: unexpected $*" >&2; exit 3
"""


def _run(tmp_path: Path, word: str) -> subprocess.CompletedProcess:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir(exist_ok=True)
    (bin_dir / "ray").write_text(FAKE_RAY)
    # The script puts the directory of $PY's interpreter first on PATH: the stand-in's.
    # A port when asked for a free one, else the interpreter's path.
    (bin_dir / "python").write_text(f"#!/usr/bin/env bash\ncase \"$*\" in *getsockname*) echo 30123 ;; "
                                    f"*) echo {bin_dir}/python ;; esac\n")
    for name in ("ray", "python"):
        (bin_dir / name).chmod(0o755)
    env = {**os.environ, "PY": str(bin_dir / "python"), "STATUS_WORD": word}
    return subprocess.run(["bash", str(ROOT / "cluster" / "local_job.sh")], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=60)


def test_a_job_that_succeeded_exits_0(tmp_path: Path) -> None:
    proc = _run(tmp_path, "succeeded")
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    assert "the job's own output" in proc.stdout


def test_a_job_that_failed_exits_1_and_shows_its_status(tmp_path: Path) -> None:
    proc = _run(tmp_path, "failed")
    assert proc.returncode == 1
    assert "failed" in proc.stderr
