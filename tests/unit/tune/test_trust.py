"""``tune --resume`` loads pickles, so it refuses a sweep folder others could have written."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from medsight_ray.errors import ConfigError
from medsight_ray.tune.trust import check_trusted


def _sweep(tmp: Path) -> Path:
    (tmp / "sweep" / "grading-grading").mkdir(parents=True)
    (tmp / "sweep" / "grading-grading" / "tuner.pkl").write_bytes(b"x")
    (tmp / "sweep" / "request.json").write_text("{}")
    for path in [tmp / "sweep", *(tmp / "sweep").rglob("*")]:
        path.chmod(0o755 if path.is_dir() else 0o644)
    return tmp / "sweep"


def test_the_users_own_folder_is_trusted(tmp_path: Path) -> None:
    check_trusted(_sweep(tmp_path))
    check_trusted(tmp_path / "nothing-there")
    check_trusted("s3://bucket/sweep")  # the bucket's access control, not file modes


@pytest.mark.parametrize("mode", [0o646, 0o757])
def test_a_file_or_folder_writable_by_others_is_refused(tmp_path: Path, mode: int) -> None:
    sweep = _sweep(tmp_path)
    target = sweep / "grading-grading" / ("tuner.pkl" if mode == 0o646 else "")
    target.chmod(mode)
    with pytest.raises(ConfigError, match="grading-grading.*refusing to resume.*mode"):
        check_trusted(sweep)


def test_group_writable_is_refused_only_for_another_group(tmp_path: Path) -> None:
    sweep = _sweep(tmp_path)
    state = sweep / "grading-grading" / "tuner.pkl"
    state.chmod(0o664)
    check_trusted(sweep)  # the user's own group (a private-group umask of 002)
    os.chown(state, os.getuid(), os.getgid() + 4242)
    with pytest.raises(ConfigError, match="tuner.pkl"):
        check_trusted(sweep)
