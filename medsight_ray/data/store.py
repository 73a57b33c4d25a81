"""Reading and writing dataset directories, locally or on object storage.

Paths may be local paths or URIs (``file://``, ``s3://``, ``gs://``); pyarrow's
filesystems resolve them, so no I/O is hand-written here.
"""

from __future__ import annotations

import contextlib
import re
import uuid
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pyarrow as pa
import pyarrow.fs as pafs
import pyarrow.parquet as pq

from medsight_ray import atomicfile
from medsight_ray.data.schema import METADATA_KEY, SPLITS, DatasetInfo
from medsight_ray.errors import DataError, redact

_FILE_RE = re.compile(r"^(train|val|test)-\d{5}\.parquet$")
#: A writer's staging folder inside the dataset folder (hidden; no reader lists it).
_STAGING_PREFIX = ".partial-"


@dataclass(frozen=True)
class DatasetFiles:
    """The parquet files of one dataset, resolved on their filesystem.

    Attributes:
        uri: what the user gave.
        filesystem: the pyarrow filesystem the paths live on.
        by_split: split name → file paths on ``filesystem``, sorted.
    """

    uri: str
    filesystem: pafs.FileSystem
    by_split: dict[str, list[str]]

    @property
    def all_paths(self) -> list[str]:
        """Every file, in split order."""
        return [p for s in SPLITS for p in self.by_split.get(s, [])]


def resolve(uri: str | Path) -> tuple[pafs.FileSystem, str]:
    """Turn a local path or URI into (filesystem, path on it)."""
    text = str(uri)
    if "://" not in text:
        return pafs.LocalFileSystem(), str(Path(text).expanduser().resolve())
    try:
        return pafs.FileSystem.from_uri(text)
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError, OSError) as err:
        raise DataError(
            "cannot open this location", where=redact(text),
            expected="a local path or a file://, s3:// or gs:// URI", got=str(err),
        ) from None


def child(uri: str | Path, *names: str) -> str:
    """``uri`` (a local path or URI) with ``names`` appended to its path: a URI keeps its
    scheme, keys and options (``?endpoint_override=...``) around the longer path."""
    text = str(uri)
    if "://" not in text:
        return str(Path(text, *names))
    parts = urlsplit(text)
    path = "/".join([parts.path.rstrip("/"), *names])
    return parts._replace(path=path).geturl()


def write_text_at(uri: str | Path, text: str) -> None:
    """Write ``text`` (UTF-8) to a local path or URI, whole or not at all: on local disk
    through a renamed temporary sibling (:mod:`medsight_ray.atomicfile`), on an object
    store as one object (a PUT is whole or absent). Parent folders are created."""
    fs, path = resolve(uri)
    if isinstance(fs, pafs.LocalFileSystem):
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        atomicfile.write_text(path, text)
        return
    fs.create_dir(path.rsplit("/", 1)[0], recursive=True)
    with fs.open_output_stream(path) as fh:
        fh.write(text.encode("utf-8"))


def ray_storage(uri: str | Path) -> tuple[str, pafs.FileSystem | None]:
    """``(storage_path, storage_filesystem)`` to give Ray Train or Tune for ``uri``.

    Local storage is its absolute path and no filesystem. Object storage is the path on
    its pyarrow filesystem and that filesystem, so Ray never sees the URI: keys and
    endpoint options written into it reach no Ray log, state file or dashboard.
    """
    fs, path = resolve(uri)
    return (path, None) if isinstance(fs, pafs.LocalFileSystem) else (path, fs)


def uri_of(storage: str | Path, path: str) -> str:
    """A path on ``storage``'s filesystem (as Ray reports a checkpoint: ``bucket/key``)
    as a URI that opens the same filesystem: the scheme, keys and endpoint options of
    ``storage`` kept. Local storage: the path itself. Such a URI may hold keys, so it is
    for opening files, and is redacted wherever it is shown or saved.
    """
    text = str(storage)
    if "://" not in text or text.startswith("file://") or "://" in path:
        return path
    parts = urlsplit(text)
    user = parts.netloc.rsplit("@", 1)[0] + "@" if "@" in parts.netloc else ""
    return f"{parts.scheme}://{user}{path.lstrip('/')}" + (f"?{parts.query}" if parts.query else "")


def list_dataset(uri: str | Path) -> DatasetFiles:
    """Find a dataset's ``{split}-NNNNN.parquet`` files.

    Raises:
        DataError: the location does not exist, or holds no dataset files.
    """
    fs, root = resolve(uri)
    return _listing(fs, root, str(uri))


def _listing(fs: pafs.FileSystem, root: str, uri: str) -> DatasetFiles:
    """The dataset files at ``root`` on ``fs``; ``uri`` is what messages name."""
    info = fs.get_file_info(root)
    if info.type == pafs.FileType.NotFound:
        raise DataError(
            "dataset directory does not exist", where=redact(uri),
            expected="a directory written by 'python -m medsight_ray.data synth' or 'import'",
            got="nothing at that path",
        )
    if info.type != pafs.FileType.Directory:
        raise DataError(
            "dataset location is not a directory", where=redact(uri),
            expected="a directory of {split}-NNNNN.parquet files", got="a file",
        )
    entries = fs.get_file_info(pafs.FileSelector(root, recursive=False))
    by_split: dict[str, list[str]] = {}
    for entry in entries:
        name = entry.base_name
        match = _FILE_RE.match(name)
        if match and entry.type == pafs.FileType.File:
            by_split.setdefault(match.group(1), []).append(entry.path)
    if not by_split:
        others = sorted(e.base_name for e in entries)[:5]
        raise DataError(
            "no dataset files found", where=redact(uri),
            expected="files named train-00000.parquet, val-00000.parquet, ...",
            got=f"{len(entries)} other entries {others}" if entries else "an empty directory",
            fix="create one with 'python -m medsight_ray.data synth' or 'import'",
        )
    return DatasetFiles(uri, fs, {k: sorted(v) for k, v in by_split.items()})


def read_footer(files: DatasetFiles, path: str) -> tuple[pa.Schema, dict[bytes, bytes]]:
    """Read one file's arrow schema and footer key-value metadata.

    Raises:
        DataError: the file is truncated or not parquet (names the file).
    """
    try:
        with files.filesystem.open_input_file(path) as fh:
            pf = pq.ParquetFile(fh)
            return pf.schema_arrow, dict(pf.metadata.metadata or {})
    except (pa.ArrowInvalid, OSError) as err:
        raise DataError(
            "parquet file does not read (truncated or not parquet)", where=path,
            expected="a complete parquet file", got=str(err),
        ) from None


def read_info(files: DatasetFiles) -> DatasetInfo:
    """Read the :class:`DatasetInfo` every file carries, and check they agree."""
    infos: dict[str, DatasetInfo] = {}
    for path in files.all_paths:
        _, meta = read_footer(files, path)
        if METADATA_KEY not in meta:
            raise DataError(
                "parquet file carries no medsight_ray metadata", where=path,
                expected="footer metadata key 'medsight_ray' with the dataset info",
                got=f"metadata keys {sorted(k.decode(errors='replace') for k in meta)}",
                fix="write datasets with 'python -m medsight_ray.data synth' or 'import'",
            )
        infos[path] = DatasetInfo.from_json(meta[METADATA_KEY], where=f"{path} metadata")
    first_path, first = next(iter(infos.items()))
    for path, info in infos.items():
        if info != first:
            raise DataError(
                "files of one dataset disagree on their metadata", where=path,
                expected=f"the same info as {first_path}", got=info.to_json(),
            )
    return first


def iter_batches(files: DatasetFiles, batch_size: int = 256) -> Iterator[tuple[str, pa.RecordBatch]]:
    """Stream (path, record batch) over every file without loading a file whole."""
    for path in files.all_paths:
        try:
            with files.filesystem.open_input_file(path) as fh:
                for batch in pq.ParquetFile(fh).iter_batches(batch_size=batch_size):
                    yield path, batch
        except (pa.ArrowInvalid, OSError) as err:
            raise DataError(
                "parquet file does not read (truncated or corrupt)", where=path,
                expected="a complete parquet file", got=str(err),
            ) from None


def new_staging(fs: pafs.FileSystem, root: str) -> str:
    """A new hidden staging folder inside ``root`` (created, with ``root``) for files to
    be moved in once whole; staging folders a killed writer left there are removed first.
    No reader lists a staging folder."""
    for stale in fs.get_file_info(pafs.FileSelector(root, allow_not_found=True)):
        if stale.base_name.startswith(_STAGING_PREFIX) and stale.type == pafs.FileType.Directory:
            fs.delete_dir(stale.path)
    staging = f"{root}/{_STAGING_PREFIX}{uuid.uuid4().hex[:12]}"
    fs.create_dir(staging, recursive=True)
    return staging


class DatasetWriter:
    """Write rows into ``{split}-NNNNN.parquet`` files, streaming, and swap them in whole.

    Rows arrive as dicts in the layout of :mod:`medsight_ray.data.schema`, each with
    its ``split``. They are buffered per split and flushed as row groups, and a split
    rolls over to a new file every ``rows_per_file`` rows, so memory stays flat however
    many rows are written, and readers can shuffle and parallelise by file. The
    dataset info goes into each file's footer on :meth:`close`, once ``max_boxes`` is
    known.

    Nothing lost: the files are written into a hidden staging folder inside ``out``
    (``.partial-<token>``, which no reader lists). Only :meth:`close`, after reading
    every footer back and counting the rows, moves them over the dataset files ``out``
    held and deletes the old ones no new file replaced. Until then a dataset already at
    ``out`` is untouched: an import that fails (:meth:`abort`, or leaving a ``with``
    block by an exception) or is killed leaves it byte-identical. The swap is one
    rename per file on local disk, one copy per object on object storage (which has no
    rename); a crash inside it can leave files of both versions, which readers then
    refuse because their footers disagree (:func:`read_info`), rather than train on.
    Other files in ``out`` are kept. Staging folders left by a killed writer are
    removed by the next writer to ``out``.
    """

    def __init__(self, out: str | Path, info: DatasetInfo, row_group_rows: int = 256,
                 rows_per_file: int = 2048) -> None:
        self.fs, self.root = resolve(out)
        self.shown = redact(str(out))
        try:
            self._created_root = self.fs.get_file_info(self.root).type == pafs.FileType.NotFound
            self.staging = new_staging(self.fs, self.root)
        except OSError as err:
            raise DataError(
                "output directory is not writable", where=self.shown,
                expected="a writable directory", got=str(err),
            ) from None
        self.info = info
        self.row_group_rows = row_group_rows
        self.rows_per_file = max(rows_per_file, row_group_rows)
        self._schema = info.schema().remove_metadata()
        self._buffers: dict[str, list[dict]] = {s: [] for s in SPLITS}
        self._open: dict[str, tuple[Any, pq.ParquetWriter, int]] = {}  # split -> stream, writer, rows
        self._done: list[tuple[Any, pq.ParquetWriter]] = []
        self._file_index: dict[str, int] = {s: 0 for s in SPLITS}
        self.max_boxes = 0
        self.rows = 0

    def __enter__(self) -> DatasetWriter:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, *_: object) -> None:
        # close() is the caller's: it returns the final info. An exception aborts.
        if exc_type is not None:
            self.abort()

    def write(self, rows: Iterable[dict]) -> None:
        """Add rows; each must carry a ``split``."""
        for row in rows:
            split = row["split"]
            self._buffers[split].append(row)
            self.rows += 1
            if "boxes" in row:
                self.max_boxes = max(self.max_boxes, len(row["boxes"]))
            if len(self._buffers[split]) >= self.row_group_rows:
                self._flush(split)

    def _flush(self, split: str) -> None:
        rows = self._buffers[split]
        if not rows:
            return
        if split not in self._open:
            path = f"{self.staging}/{split}-{self._file_index[split]:05d}.parquet"
            self._file_index[split] += 1
            stream = self.fs.open_output_stream(path)
            self._open[split] = (stream, pq.ParquetWriter(stream, self._schema), 0)
        stream, writer, count = self._open[split]
        writer.write_table(pa.Table.from_pylist(rows, schema=self._schema))
        self._buffers[split] = []
        count += len(rows)
        if count >= self.rows_per_file:
            self._done.append((stream, writer))
            del self._open[split]
        else:
            self._open[split] = (stream, writer, count)

    def close(self) -> DatasetInfo:
        """Finish the files, check they read back, swap them in; returns the final info
        (with ``max_boxes``).

        Raises:
            DataError: the written files do not read back whole (the old dataset, if
                any, is kept).
        """
        from dataclasses import replace

        info = self.info
        if info.task == "concepts":
            info = replace(info, max_boxes=self.max_boxes)
        try:
            for split in SPLITS:
                self._flush(split)
            self._done.extend((stream, writer) for stream, writer, _ in self._open.values())
            self._open = {}
            for stream, writer in self._done:
                writer.add_key_value_metadata({METADATA_KEY: info.to_json().encode()})
                writer.close()
                stream.close()
            self._verify(info)
            self._swap_in()
        except BaseException:
            self.abort()
            raise
        return info

    def _verify(self, info: DatasetInfo) -> None:
        """Every staged file's footer reads and carries ``info``; the row count adds up."""
        staged = _listing(self.fs, self.staging, self.shown)
        if read_info(staged) != info:
            raise DataError("written files do not carry the dataset info", where=self.shown,
                            expected=info.to_json(), got="other metadata")
        rows = 0
        for path in staged.all_paths:
            with self.fs.open_input_file(path) as fh:
                rows += pq.ParquetFile(fh).metadata.num_rows
        if rows != self.rows:
            raise DataError("written files do not hold every row", where=self.shown,
                            expected=f"{self.rows} rows", got=f"{rows} rows")

    def _swap_in(self) -> None:
        new = {i.base_name: i.path for i in self.fs.get_file_info(pafs.FileSelector(self.staging))}
        old = [i for i in self.fs.get_file_info(pafs.FileSelector(self.root)) if _FILE_RE.match(i.base_name)]
        for name, path in sorted(new.items()):
            # A rename on local disk (atomic per file); a copy and a delete on object storage.
            self.fs.move(path, f"{self.root}/{name}")
        for stale in old:
            if stale.base_name not in new:
                self.fs.delete_file(stale.path)
        self.fs.delete_dir(self.staging)

    def abort(self) -> None:
        """Drop what was written; the dataset at ``out`` stays as it was (a folder this
        writer created is removed)."""
        for stream, _writer, *_ in [*self._done, *self._open.values()]:
            with contextlib.suppress(OSError):
                stream.close()
        self._done, self._open = [], {}
        # Nothing here is worth an error of its own: the one that aborted is what the user needs.
        with contextlib.suppress(OSError):
            if self.fs.get_file_info(self.staging).type == pafs.FileType.Directory:
                self.fs.delete_dir(self.staging)
            if self._created_root and not self.fs.get_file_info(pafs.FileSelector(self.root, allow_not_found=True)):
                self.fs.delete_dir(self.root)
