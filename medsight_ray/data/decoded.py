"""Each split decoded once per sweep (or ``train`` run): a mirror of a dataset whose
images are raw pixels.

Every trial of a sweep, and every epoch, fold and remedy run of ``train``, streams the
same splits, and decoding PNGs (and resizing them) is the input pipeline's whole cost.
:func:`ensure_decoded` decodes them once, before the first trial or run, into a
*decoded mirror* of the dataset:

- the same files (``train-00000.parquet`` …), the same rows in the same order and the
  same row groups, and the same footer metadata;
- ``image`` (and a segmentation ``mask``) replaced by its pixels at the trials' size
  and mode, as ``fixed_size_binary(ch × S × S)`` of uint8, C order (channel, row,
  column): what :func:`medsight_ray.data.pipeline.decode_batch` would have made of
  the PNG, before normalising.

The pipeline reads a mirror as it reads the dataset (``build_datasets(decoded=...)``)
and ``decode_batch`` recognises raw pixels by their column type, so the batches are
byte-for-byte those of the PNG dataset: same blocks, same resampling draws, same
augmentation (still per epoch, on tensors). A trial trains the same with or without
the mirror; only the decode is gone.

Why a parquet mirror, not ``Dataset.materialize()``: a materialised dataset lives in
the object store of the cluster that made it, so it holds the whole split in memory
(or spills it) for the life of the sweep, and it is lost with the driver. The mirror
lives beside the sweep's results, on the storage every node of a cluster already reads
(Tune requires it to be shared), it streams in row groups like the dataset itself, so
memory stays bounded whatever its size, and a resumed sweep finds it there. Its cost
is disk: uint8 pixels, ch × S² bytes a row (4 KiB at 64 px gray, 48 KiB at 128 px RGB).

A mirror is keyed by the dataset's fingerprint, the size and the mode
(:func:`mirror_uri`), and is complete when its manifest (``decoded.json``) exists:
files are written into a hidden staging folder, moved in, and the manifest is
written last, so a mirror a killed writer left half-made is never read.
"""

from __future__ import annotations

import json
import logging
import time
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from medsight_ray.data.images import decode_images
from medsight_ray.data.schema import METADATA_KEY, DatasetInfo
from medsight_ray.data.store import child, list_dataset, new_staging, read_info, resolve, write_text_at
from medsight_ray.errors import DataError, redact

MANIFEST = "decoded.json"
#: Columns that hold encoded images, and whether each is resized as a mask (nearest).
IMAGE_COLUMNS = {"image": False, "mask": True}

log = logging.getLogger(__name__)


def mirror_uri(root: str, fingerprint: str, size: int, mode: str) -> str:
    """Where the mirror of a dataset (by ``fingerprint``) at ``size`` and ``mode`` lives
    under ``root`` (a local path or URI)."""
    return child(root, f"{fingerprint}-{size}px-{mode}")


def raw_width(channels: int, size: int) -> int:
    """Bytes of one image's raw pixels: ``channels × size × size``."""
    return channels * size * size


def read_manifest(uri: str) -> dict[str, Any] | None:
    """The mirror's manifest, or None when the mirror is absent or incomplete."""
    fs, path = resolve(uri)
    try:
        with fs.open_input_stream(f"{path}/{MANIFEST}") as fh:
            return json.loads(fh.read().decode("utf-8"))
    except (FileNotFoundError, json.JSONDecodeError):
        return None
    except OSError as err:  # an object store answers a missing key with an OSError
        if "not found" in str(err).lower() or "does not exist" in str(err).lower():
            return None
        raise


def usable(uri: str | None, fingerprint: str, size: int) -> bool:
    """Is there a complete mirror at ``uri`` of this dataset at ``size``?"""
    if not uri:
        return False
    manifest = read_manifest(uri)
    return manifest is not None and manifest.get("fingerprint") == fingerprint and manifest.get("size") == size


def _decode_column(column: pa.ChunkedArray, ids: list[str], mode: str, size: int, nearest: bool) -> pa.Array:
    """Encoded images → ``fixed_size_binary`` of their uint8 pixels at ``size``."""
    pixels = decode_images(column, ids, mode, size, nearest=nearest)
    return pa.FixedSizeBinaryArray.from_buffers(pa.binary(raw_width(1 if mode == "L" else 3, size)), len(ids),
                                                [None, pa.py_buffer(np.ascontiguousarray(pixels).tobytes())])


def decode_file(source: str, name: str, dest: str, size: int) -> int:
    """Write the decoded mirror of one dataset file (``source``/``name``) to
    ``dest``/``name``, row group by row group (memory holds one row group). Returns
    its rows."""
    src_fs, src_root = resolve(source)
    dst_fs, dst_root = resolve(dest)
    with src_fs.open_input_file(f"{src_root}/{name}") as fh:
        pf = pq.ParquetFile(fh)
        info_json = (pf.metadata.metadata or {}).get(METADATA_KEY)
        if info_json is None:
            raise DataError("parquet file carries no medsight_ray metadata", where=f"{redact(source)}/{name}",
                            expected="footer metadata key 'medsight_ray' with the dataset info", got="none")
        mode = DatasetInfo.from_json(info_json).image_mode
        schema = pf.schema_arrow.remove_metadata()
        # A mask is decoded as gray (and resized nearest), whatever the images' mode.
        modes = {column: "L" if nearest else mode for column, nearest in IMAGE_COLUMNS.items()
                 if column in schema.names}
        for column, column_mode in modes.items():
            width = raw_width(1 if column_mode == "L" else 3, size)
            schema = schema.set(schema.get_field_index(column), pa.field(column, pa.binary(width)))
        rows = 0
        with dst_fs.open_output_stream(f"{dst_root}/{name}") as out, pq.ParquetWriter(out, schema) as writer:
            for group in range(pf.num_row_groups):
                table = pf.read_row_group(group)
                ids = table.column("image_id").to_pylist()
                for column, column_mode in modes.items():
                    decoded = _decode_column(table.column(column), [f"{i} ({name})" for i in ids], column_mode,
                                             size, IMAGE_COLUMNS[column])
                    table = table.set_column(table.schema.get_field_index(column), schema.field(column), decoded)
                writer.write_table(table.replace_schema_metadata(None), row_group_size=max(len(table), 1))
                rows += len(table)
            writer.add_key_value_metadata({METADATA_KEY: info_json})
    return rows


#: Images sampled to read the stored size (from the first train row group).
SIZE_SAMPLE = 16


def stored_side(data: str, sample: int = SIZE_SAMPLE) -> int:
    """The longest side, in pixels, of the first ``sample`` stored images of ``data``'s
    first file (read from their headers: nothing is decoded); 0 for a dataset with no rows."""
    import io

    from PIL import Image

    files = list_dataset(data)
    with files.filesystem.open_input_file(files.all_paths[0]) as fh:
        pf = pq.ParquetFile(fh)
        if not pf.num_row_groups:
            return 0
        column = pf.read_row_group(0, columns=["image"]).column("image").to_pylist()[:sample]
    side = 0
    for blob in column:
        try:
            with Image.open(io.BytesIO(blob)) as img:
                side = max(side, *img.size)
        except Exception:  # noqa: BLE001 - a bad image is the data check's to name, not this estimate's
            continue
    return side


def pays(data: str, size: int) -> bool:
    """Does decoding once save work? Where the stored images are larger than ``size`` (a
    scan kept at full resolution, trained at 224 px), every epoch decodes the large image
    and resizes it, and the mirror saves both (measured: 1.29× the samples a second, and
    memory flat in the dataset's size, at 4× the size; ``bench/input_pipeline.py``).
    Where they are stored at ``size`` or smaller, a decode is cheap and the mirror saved
    nothing measurable (0.99×), so the sweep does not write one."""
    return stored_side(data) > size


def ensure_decoded(data: str, fingerprint: str, size: int, root: str, cpus: float = 1.0) -> str:
    """The URI of a complete decoded mirror of ``data`` at ``size``, under ``root``:
    found there, or written now (one Ray task per file, ``cpus`` each).

    Raises:
        DataError: an image does not decode (names the row and file); nothing is left
            at the mirror's location but what was there before.
    """
    import ray

    files = list_dataset(data)
    info = read_info(files)
    uri = mirror_uri(root, fingerprint, size, info.image_mode)
    if usable(uri, fingerprint, size):
        return uri
    fs, path = resolve(uri)
    staging = new_staging(fs, path)
    names = [p.rsplit("/", 1)[-1] for p in files.all_paths]
    staging_uri = child(uri, staging.rsplit("/", 1)[-1])
    started = time.perf_counter()
    task = ray.remote(num_cpus=cpus)(decode_file)
    try:
        rows = ray.get([task.remote(data, name, staging_uri, size) for name in names])
    except BaseException as err:
        fs.delete_dir(staging)
        # A bad image raises in the task: the user reads its DataError, not Ray's wrapper.
        if isinstance(err, ray.exceptions.RayTaskError) and isinstance(getattr(err, "cause", None), DataError):
            raise err.cause from None
        raise
    try:
        for name in names:
            fs.move(f"{staging}/{name}", f"{path}/{name}")
        fs.delete_dir(staging)
    except OSError as err:
        # A task on another node wrote to its own disk: the storage is not shared.
        raise DataError("decoded files did not reach the run's storage", where=redact(uri),
                        expected="a storage every node of the cluster writes and reads (a shared path, or an "
                                 "s3:// or gs:// URI)", got=f"{type(err).__name__}: {err}",
                        fix="give --storage a shared location, or --decode-each-epoch") from None
    size_bytes = sum(i.size or 0 for i in fs.get_file_info([f"{path}/{name}" for name in names]))
    manifest = {"fingerprint": fingerprint, "size": size, "mode": info.image_mode, "source": redact(str(data)),
                "files": dict(zip(names, rows)), "bytes": size_bytes,
                "seconds": round(time.perf_counter() - started, 2)}
    write_text_at(child(uri, MANIFEST), json.dumps(manifest, indent=2))
    log.info("decoded %d rows of %s once, at %d px, into %s (%.1f MiB): %.1f s", sum(rows), redact(str(data)), size,
             redact(uri), size_bytes / 2**20, manifest["seconds"])
    return uri

