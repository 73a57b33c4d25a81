"""Decode an importer's items into rows: in this process, or in parallel with Ray Data.

Decoding dominates an import (the real chest CR DICOM: about 0.2 s to decode, 20 ms more
to resize and encode as PNG; VinDr-CXR's 15,000 would take about 55 minutes in one
process). :func:`decoded_rows` with ``parallel=True`` runs each item's ``make_row`` as a
Ray Data task on every core of every node, and hands the rows back in the items' order
(``preserve_order``), so that the driver writes exactly what the serial import writes:
same rows, same order, same file names and footer (Ray Data's own parquet writer cannot
write this product's layout, so the driver writes).
"""

from __future__ import annotations

import pickle
import time
from collections.abc import Callable, Iterator, Sequence
from typing import Any, TypeVar

import numpy as np

from medsight_ray import console
from medsight_ray.errors import MedsightError

Item = TypeVar("Item")
#: Items per Ray Data block: small, so that every core gets work and progress is smooth.
BLOCK_ITEMS = 16
#: Seconds between progress lines.
PROGRESS_EVERY_S = 5.0


def _decode_one(make_row: Callable[[Any], dict], blob: bytes) -> bytes:
    """One item's row, pickled; the product's own error (a bad image names its file)
    travels back as data, so the driver raises it as it is, not wrapped by Ray."""
    try:
        return pickle.dumps(make_row(pickle.loads(blob)))
    except MedsightError as err:
        return pickle.dumps((_ERROR, type(err), err.what, err.where, err.expected, err.got, err.fix))


_ERROR = "medsight_ray.decode.error"


def _rows_with_ray(items: Sequence[Any], make_row: Callable[[Any], dict]) -> Iterator[dict]:
    import ray

    ctx = ray.data.DataContext.get_current()
    ctx.execution_options.preserve_order = True

    def decode(batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        return {"row": np.array([_decode_one(make_row, blob) for blob in batch["item"]], dtype=object)}

    blobs = [{"item": pickle.dumps(item)} for item in items]
    ds = ray.data.from_items(blobs, override_num_blocks=max(1, -(-len(items) // BLOCK_ITEMS)))
    ds = ds.map_batches(decode, batch_size=BLOCK_ITEMS, batch_format="numpy")
    for batch in ds.iter_batches(batch_size=BLOCK_ITEMS, batch_format="numpy"):
        for blob in batch["row"]:
            row = pickle.loads(blob)
            if isinstance(row, tuple) and row[:1] == (_ERROR,):
                kind, what, where, expected, got, fix = row[1:]
                raise kind(what, where=where, expected=expected, got=got, fix=fix)
            yield row


def decoded_rows(items: Sequence[Item], make_row: Callable[[Item], dict], parallel: bool = False) -> Iterator[dict]:
    """``make_row(item)`` for every item, in order, with a progress line every few seconds.

    Args:
        items: what to decode (file paths and labels); picklable when ``parallel``.
        make_row: item -> row dict (decodes, resizes, encodes); a module-level function or
            a closure over picklable values when ``parallel``.
        parallel: decode with Ray Data on the cluster this process is connected to
            (started by the caller), else here, one item after another.
    """
    rows = _rows_with_ray(items, make_row) if parallel else (make_row(item) for item in items)
    started = last = time.monotonic()
    since = 0
    for done, row in enumerate(rows, start=1):
        now = time.monotonic()
        if done == len(items):  # the whole import's rate, start-up included
            console.say(f"decoded {done}/{len(items)} images ({done / max(now - started, 1e-9):.1f}/s)")
        elif now - last >= PROGRESS_EVERY_S:  # the rate since the last line
            console.say(f"decoded {done}/{len(items)} images ({(done - since) / (now - last):.1f}/s)")
            last, since = now, done
        yield row
