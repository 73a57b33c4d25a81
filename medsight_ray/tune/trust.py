"""Resuming trusts the sweep's folder: refuse one that another user could have written.

``tune --resume`` loads what the interrupted sweep saved: Ray Tune's experiment state
and the searcher's state are pickles, and unpickling runs code. So before a resume
reads a local folder, every file and folder in it must belong to the user resuming,
and none may be writable by others (nor by a group other than the user's own, which
covers systems whose umask makes files group-writable for a private group). Object
storage (``s3://``, ``gs://``) has no such owner; its access control is the bucket's.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

from medsight_ray.errors import ConfigError


def check_trusted(folder: str | Path) -> None:
    """Raise unless every entry under ``folder`` (a local path) is the user's own and
    writable by nobody else.

    Raises:
        ConfigError: names the first entry that fails, its owner and mode.
    """
    text = str(folder)
    if "://" in text and not text.startswith("file://"):
        return
    root = Path(text.removeprefix("file://"))
    if not root.exists():
        return
    uid, gid = os.getuid(), os.getgid()
    for path in [root, *root.rglob("*")]:
        st = path.lstat()
        if stat.S_ISLNK(st.st_mode):  # a link's own mode means nothing; its target is checked where it lies inside
            continue
        others = st.st_mode & stat.S_IWOTH or (st.st_mode & stat.S_IWGRP and st.st_gid != gid)
        if st.st_uid != uid or others:
            raise ConfigError(
                "refusing to resume from a sweep folder others could have written", where=str(path),
                expected=f"files owned by you (uid {uid}) and writable by no other user or group",
                got=f"owner uid {st.st_uid}, mode {stat.filemode(st.st_mode)}",
                fix="resume only sweeps you ran: resuming loads the sweep's saved state, and loading "
                    "it runs code; if the folder is yours, chown/chmod it (e.g. chmod -R go-w)")
