"""Copy a sweep's own outputs (``summary.json``, ``request.json``, ``report/``) next to its
trials in ``--storage``, so that on a cluster nothing lives only on the head node."""

from __future__ import annotations

from pathlib import Path

import pyarrow.fs as pafs

from medsight_ray.data.store import resolve

OUTPUTS = ("summary.json", "request.json", "report")


def publish(out: Path, storage: str) -> list[str]:
    """Copy :data:`OUTPUTS` from ``out`` into ``storage`` (a path or URI); returns what was
    copied, as destination paths. Nothing is copied when ``storage`` is ``out`` itself."""
    fs, root = resolve(storage)
    if isinstance(fs, pafs.LocalFileSystem) and Path(root).resolve() == out.resolve():
        return []
    copied = []
    for name in OUTPUTS:
        source = out / name
        if not source.exists():
            continue
        destination = f"{root.rstrip('/')}/{name}"
        if source.is_dir():
            fs.create_dir(destination, recursive=True)
        pafs.copy_files(str(source), destination, source_filesystem=pafs.LocalFileSystem(),
                        destination_filesystem=fs)
        copied.append(destination)
    return copied
