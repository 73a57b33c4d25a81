"""Files written whole or not at all: the state that resuming and reading a run rely on.

A file is written to a hidden temporary sibling and renamed over its target
(``os.replace``, atomic on POSIX within one filesystem), so a reader or a resumed run
sees either the previous file or the new one, never a half-written file, whatever
kills the writer. Used for a trial's ``stage_result.json``, a sweep's ``request.json``
and ``summary.json``, the searcher state, checkpoints' metadata and final models.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


@contextmanager
def replacing(path: str | Path) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; on a clean exit it replaces ``path``.

    An exception (or a kill) leaves ``path`` as it was and removes the temporary file
    (a kill leaves a hidden ``.<name>.*.tmp`` beside it, never a damaged ``path``).
    """
    target = Path(path)
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    os.close(fd)
    # mkstemp makes the file private (0600); the file it replaces keeps its mode, and a
    # new one gets what open() would give it under a usual umask.
    os.chmod(tmp, target.stat().st_mode & 0o777 if target.exists() else 0o644)
    try:
        yield Path(tmp)
        os.replace(tmp, target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write_text(path: str | Path, text: str) -> None:
    """Write ``text`` (UTF-8) to ``path`` atomically."""
    with replacing(path) as tmp:
        tmp.write_text(text, encoding="utf-8")


def write_bytes(path: str | Path, data: bytes) -> None:
    """Write ``data`` to ``path`` atomically."""
    with replacing(path) as tmp:
        tmp.write_bytes(data)
