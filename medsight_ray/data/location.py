"""A file or folder of an importer's input, local or on object storage.

The importers read image folders, CSVs and DICOMs. With :class:`Location` they read them
from a local path or a ``file://``, ``s3://`` or ``gs://`` URI alike: pyarrow's
filesystems (:func:`medsight_ray.data.store.resolve`) do the I/O, and this class offers
the handful of ``pathlib`` operations the importers use. A location pickles with its
filesystem, so Ray Data tasks on other nodes open the same files (an ``s3://`` URI's
endpoint and keys travel with it). What a person reads (``str``, errors, the dataset's
``source``) never shows keys written into a URI.
"""

from __future__ import annotations

import io
import posixpath
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import pyarrow.fs as pafs

from medsight_ray.data.store import resolve
from medsight_ray.errors import redact


class _Reader(io.BufferedReader):
    """A buffered reader that answers to ``name``, as a file does (pydicom asks)."""

    def __init__(self, raw: Any, buffer_bytes: int, name: str) -> None:
        super().__init__(raw, buffer_bytes)
        self._shown = name

    @property
    def name(self) -> str:  # type: ignore[override]
        return self._shown


@dataclass(frozen=True)
class Location:
    """One file or folder on a pyarrow filesystem.

    Attributes:
        fs: the filesystem.
        path: the path on ``fs`` (for S3, ``bucket/key``).
        shown: how it is named to a person (the user's path or redacted URI).
        kind: file or folder, when a listing already said (one request less per
            file on object storage); None to ask the filesystem.
    """

    fs: pafs.FileSystem
    path: str
    shown: str
    kind: pafs.FileType | None = field(default=None, compare=False)

    @classmethod
    def of(cls, where: str | Path | Location) -> Location:
        """The location of a local path or a URI (a location is returned as it is).

        Raises:
            DataError: the URI's scheme or options are not understood.
        """
        if isinstance(where, Location):
            return where
        fs, path = resolve(where)
        return cls(fs, path, redact(str(where)))

    def __truediv__(self, name: str) -> Location:
        return Location(self.fs, posixpath.join(self.path, name), posixpath.join(self.shown, name))

    def __str__(self) -> str:
        return self.shown

    @property
    def name(self) -> str:
        """The last part of the path, with its suffix."""
        return posixpath.basename(self.path.rstrip("/"))

    @property
    def stem(self) -> str:
        """:attr:`name` without its suffix."""
        return Path(self.name).stem

    @property
    def suffix(self) -> str:
        """The suffix of :attr:`name` (``.png``), or ``""``."""
        return Path(self.name).suffix

    @property
    def parent(self) -> Location:
        """The folder holding this location."""
        return Location(self.fs, posixpath.dirname(self.path.rstrip("/")), posixpath.dirname(self.shown.rstrip("/")))

    def type(self) -> pafs.FileType:
        """File, folder or nothing (``NotFound``)."""
        return self.kind if self.kind is not None else self.fs.get_file_info(self.path).type

    def is_dir(self) -> bool:
        """A folder (for object storage: a prefix that holds objects)."""
        return self.type() == pafs.FileType.Directory

    def is_file(self) -> bool:
        """A file."""
        return self.type() == pafs.FileType.File

    def iterdir(self) -> list[Location]:
        """The files and folders directly inside, sorted by name."""
        infos = self.fs.get_file_info(pafs.FileSelector(self.path, recursive=False))
        return [replace(self / info.base_name, kind=info.type) for info in sorted(infos, key=lambda i: i.base_name)]

    def open(self, buffer_bytes: int = 1 << 18) -> io.BufferedReader:
        """A seekable binary file (what PIL, pydicom and pandas read from). On object
        storage each refill of the buffer is one ranged request, so a DICOM header is
        read without its pixels, and in a few requests rather than one per field."""
        return _Reader(self.fs.open_input_file(self.path), buffer_bytes, self.shown)

    def read_bytes(self) -> bytes:
        """The whole file, in one read."""
        with self.fs.open_input_file(self.path) as fh:
            return fh.read()
