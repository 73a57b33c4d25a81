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


def _decode_batch(items: Sequence[Any], make_row: Callable[[Any], dict],
                  positions: np.ndarray) -> dict[str, list]:
    """The rows of the items at ``positions``; the product's own error (a bad image names
    its file) travels back as data in the ``error`` column, so the driver raises it as it
    is, not wrapped by Ray."""
    rows: list[dict | None] = []
    errors: list[dict | None] = []
    for at in positions:
        try:
            rows.append(make_row(items[int(at)]))
            errors.append(None)
        except MedsightError as err:
            rows.append(None)
            errors.append({"kind": type(err).__name__, "what": err.what, "where": err.where,
                           "expected": err.expected, "got": err.got, "fix": err.fix})
    return {"row": rows, "error": errors}


def _rows_with_ray(items: Sequence[Any], make_row: Callable[[Any], dict]) -> Iterator[dict]:
    import ray

    from medsight_ray import errors

    ctx = ray.data.DataContext.get_current()
    ctx.execution_options.preserve_order = True
    # The items travel with the function (Ray serialises it once per task); rows come
    # back as Arrow structs, which the dataset writer converts as it converts any row.
    ds = ray.data.from_items([{"at": i} for i in range(len(items))],
                             override_num_blocks=max(1, -(-len(items) // BLOCK_ITEMS)))
    ds = ds.map_batches(lambda batch: _decode_batch(items, make_row, batch["at"]), batch_size=BLOCK_ITEMS,
                        batch_format="numpy")
    for batch in ds.iter_batches(batch_size=BLOCK_ITEMS, batch_format="pyarrow"):
        for row, error in zip(batch.column("row").to_pylist(), batch.column("error").to_pylist()):
            if error is not None:
                kind = getattr(errors, error.pop("kind"), MedsightError)
                raise kind(error.pop("what"), **error)
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
