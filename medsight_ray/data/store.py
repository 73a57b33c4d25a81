"""Reading and writing dataset directories, locally or on object storage.

Paths may be local paths or URIs (``file://``, ``s3://``, ``gs://``); pyarrow's
filesystems resolve them, so no I/O is hand-written here.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.fs as pafs
import pyarrow.parquet as pq

from medsight_ray.data.schema import METADATA_KEY, SPLITS, DatasetInfo
from medsight_ray.errors import DataError, redact

_FILE_RE = re.compile(r"^(train|val|test)-\d{5}\.parquet$")


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


def list_dataset(uri: str | Path) -> DatasetFiles:
    """Find a dataset's ``{split}-NNNNN.parquet`` files.

    Raises:
        DataError: the location does not exist, or holds no dataset files.
    """
    fs, root = resolve(uri)
    info = fs.get_file_info(root)
    if info.type == pafs.FileType.NotFound:
        raise DataError(
            "dataset directory does not exist", where=redact(str(uri)),
            expected="a directory written by 'python -m medsight_ray.data synth' or 'import'",
            got="nothing at that path",
        )
    if info.type != pafs.FileType.Directory:
        raise DataError(
            "dataset location is not a directory", where=redact(str(uri)),
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
            "no dataset files found", where=redact(str(uri)),
            expected="files named train-00000.parquet, val-00000.parquet, ...",
            got=f"{len(entries)} other entries {others}" if entries else "an empty directory",
            fix="create one with 'python -m medsight_ray.data synth' or 'import'",
        )
    return DatasetFiles(str(uri), fs, {k: sorted(v) for k, v in by_split.items()})


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


class DatasetWriter:
    """Write rows into ``{split}-NNNNN.parquet`` files, streaming.

    Rows arrive as dicts in the layout of :mod:`medsight_ray.data.schema`, each with
    its ``split``. They are buffered per split and flushed as row groups, and a split
    rolls over to a new file every ``rows_per_file`` rows, so memory stays flat however
    many rows are written, and readers can shuffle and parallelise by file. The
    dataset info goes into each file's footer on :meth:`close`, once ``max_boxes`` is
    known.
    """

    def __init__(self, out: str | Path, info: DatasetInfo, row_group_rows: int = 256,
                 rows_per_file: int = 2048) -> None:
        self.fs, self.root = resolve(out)
        try:
            self.fs.create_dir(self.root, recursive=True)
            for stale in self.fs.get_file_info(pafs.FileSelector(self.root)):
                if _FILE_RE.match(stale.base_name):
                    self.fs.delete_file(stale.path)
        except OSError as err:
            raise DataError(
                "output directory is not writable", where=redact(str(out)),
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
            path = f"{self.root}/{split}-{self._file_index[split]:05d}.parquet"
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
        """Finish the files and return the final info (with ``max_boxes``)."""
        from dataclasses import replace

        info = self.info
        if info.task == "concepts":
            info = replace(info, max_boxes=self.max_boxes)
        for split in SPLITS:
            self._flush(split)
        self._done.extend((stream, writer) for stream, writer, _ in self._open.values())
        for stream, writer in self._done:
            writer.add_key_value_metadata({METADATA_KEY: info.to_json().encode()})
            writer.close()
            stream.close()
        return info
