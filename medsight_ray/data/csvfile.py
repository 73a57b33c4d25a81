"""The one reader of the CSV files importers take: annotations, image sizes, image labels.

A CSV is read as pandas reads it from its name: ``.gz``, ``.bz2``, ``.xz``, ``.zip``
and ``.tar`` (and ``.zst`` when ``zstandard`` is installed) are decompressed, anything
else is plain text. The file may be local or on object storage (:class:`Location`);
pandas infers compression only from a path, never from an open handle, so the
compression is inferred here from the location's name and passed on. Decompression
itself is pandas' (and the standard library's) work.

A file that cannot be read as such a CSV (binary, another encoding, a truncated
archive, or compressed data under a plain ``.csv`` name) is a :class:`DataError` that
names the file, what was expected and what was found: never a traceback.
"""

from __future__ import annotations

import lzma
import tarfile
import zipfile
import zlib
from collections.abc import Mapping, Sequence

import pandas as pd
from pandas.io.common import infer_compression

from medsight_ray.data.location import Location
from medsight_ray.errors import DataError

#: Name suffixes read as compressed, by pandas' compression name.
COMPRESSIONS = {"gzip": ".gz", "bz2": ".bz2", "xz": ".xz", "zip": ".zip", "tar": ".tar", "zstd": ".zst"}
READABLE = "plain text, or compressed as " + ", ".join(COMPRESSIONS.values()) + " (by the file name's suffix)"

#: Leading bytes of compressed data, to say what a file holds when it does not decode.
_MAGIC = {b"\x1f\x8b": "gzip", b"BZh": "bz2", b"\xfd7zXZ\x00": "xz", b"PK\x03\x04": "zip",
          b"\x28\xb5\x2f\xfd": "zstd"}

# What decompressing and parsing a file that is not a readable CSV raises. Each is
# a fact about the file, not a bug: UnicodeDecodeError and pandas' parser errors are
# ValueErrors; a truncated gzip/bz2/xz stream is an EOFError; a corrupt gzip header
# is an OSError (BadGzipFile).
_UNREADABLE: tuple[type[BaseException], ...] = (ValueError, EOFError, OSError, zipfile.BadZipFile,
                                                lzma.LZMAError, zlib.error, tarfile.TarError)
try:
    import zstandard

    _UNREADABLE += (zstandard.ZstdError,)
except ImportError:  # .zst files then get the clear "install zstandard" error below
    pass


def compression_of(location: Location) -> str | None:
    """The compression pandas would infer from the location's name (``"gzip"``,
    ``"zip"``, ...), or None for a plain CSV."""
    return infer_compression(location.name, "infer")


def _what_it_holds(location: Location, compression: str | None, err: BaseException) -> str:
    """What the file is, judged by its first bytes and the error reading it raised."""
    try:
        with location.open(buffer_bytes=1 << 12) as fh:
            head = fh.read(8)
    except OSError as open_err:
        return f"a file that cannot be opened ({open_err})"
    if not head:
        return "an empty file"
    for magic, kind in _MAGIC.items():
        if head.startswith(magic) and kind != compression:
            return (f"{kind} data under a name without the {COMPRESSIONS[kind]} suffix "
                    f"(rename it to end in {COMPRESSIONS[kind]})")
    if isinstance(err, UnicodeDecodeError):
        return f"bytes that are not UTF-8 text (byte {err.start} of the {'decompressed ' if compression else ''}text)"
    if compression is not None and not isinstance(err, pd.errors.ParserError):
        return f"{compression} data that does not decompress"
    return "text that does not parse as a CSV"


def read_csv(
    location: Location,
    what: str,
    columns: Sequence[str],
    dtype: Mapping[str, type] | None = None,
) -> pd.DataFrame:
    """Read one importer CSV, checking that it exists and holds ``columns``.

    Args:
        location: the CSV, local or on object storage; its name's suffix chooses the
            decompression (see the module docstring).
        what: what the file is, for messages ("VinDr-CXR annotations CSV").
        columns: the columns it must have (others are kept).
        dtype: pandas dtypes by column, e.g. ``{"image_id": str}`` so ids keep their
            leading zeros.

    Returns:
        the rows, one per CSV line after the header.

    Raises:
        DataError: no such file; the file does not decode or parse as a CSV; a
            ``.zst`` file without ``zstandard`` installed; a column is missing.
    """
    if not location.is_file():
        raise DataError(f"{what} does not exist", where=str(location), expected=what, got="no such file")
    compression = compression_of(location)
    try:
        with location.open() as fh:
            frame = pd.read_csv(fh, compression=compression, dtype=dict(dtype or {}))
    except ImportError as err:
        raise DataError(f"{what} is compressed with a codec that is not installed", where=str(location),
                        expected=READABLE, got=f"{compression} ({err})",
                        fix="pip install zstandard, or decompress the file") from None
    except _UNREADABLE as err:
        raise DataError(f"{what} cannot be read as a CSV", where=str(location),
                        expected=f"a CSV with columns {list(columns)}, {READABLE}",
                        got=f"{_what_it_holds(location, compression, err)}: {type(err).__name__}: {err}") from None
    missing = [c for c in columns if c not in frame.columns]
    if missing:
        raise DataError(f"{what} lacks columns {missing}", where=str(location),
                        expected=f"columns {list(columns)}", got=f"columns {list(frame.columns)}")
    return frame
