"""A query's answer as Arrow: the schema, and bounded record batches that are
zero-copy views of the store, in one of two layouts:

- ``long`` (the default): ``datetime``, ``hub``, ``price``; rows ordered by
  hub in the order asked, then by time, as ``DataFrame.melt`` orders them;
- ``wide``: ``datetime``, then one float64 column per series.

Bound: every record batch holds at most ``MAX_BATCH_ROWS`` (65,536) rows and
at most ``MAX_BATCH_BYTES`` (8 MiB) of Arrow data, so an answer of any size is
a stream of small messages. No copies: wide batches are slices of the store's
arrays; a long batch is a slice of the store's timestamps, a slice of one price
column and a slice of one hub column built once per hub from two buffers (the
only memory an answer allocates: about 1 MB per hub, one or two hubs at a time).
"""
import dataclasses

import numpy as np
import pyarrow as pa

from ercot_fast.datasets import SYNTHETIC_KEY
from ercot_fast.query.parse import UTC
from ercot_fast.query.run import PriceResult

MAX_BATCH_ROWS = 65_536
MAX_BATCH_BYTES = 8 << 20
LONG = "long"
WIDE = "wide"
LAYOUTS = (LONG, WIDE)
#: Arrow IPC body compressions a Flight ticket may ask for (None: uncompressed, the default)
COMPRESSIONS = ("zstd", "lz4")


@dataclasses.dataclass(frozen=True)
class Selection:
    """What to send: a query's result, how to lay it out, and the IPC
    compression of its record batches (one of COMPRESSIONS, or None)."""

    result: PriceResult
    layout: str = LONG
    tz: str = UTC
    compression: str = None


def result_schema(selection, synthetic=False):
    """The schema do_get sends for ``selection``."""
    metadata = {SYNTHETIC_KEY: b"true"} if synthetic else None
    fields = [pa.field("datetime", pa.timestamp("ms", tz=selection.tz), nullable=False)]
    if selection.layout == LONG:
        fields += [pa.field("hub", pa.utf8(), nullable=False), pa.field("price", pa.float64())]
    else:
        fields += [pa.field(name, pa.float64()) for name in selection.result.names]
    return pa.schema(fields, metadata=metadata)


def rows_per_batch(bytes_per_row):
    """Rows of one record batch of rows that take ``bytes_per_row``, within both bounds."""
    return max(1, min(MAX_BATCH_ROWS, MAX_BATCH_BYTES // bytes_per_row))


def result_parts(selection, schema):
    """The answer as Tables of bounded record batches (zero-copy slices):
    the wide answer in one part, the long answer one part per hub, so only one
    hub column at a time is alive while it streams. Yields ``(table,
    wire_bytes)``: the size of its Arrow buffers as the client receives them
    (a validity bitmap only where there are nulls)."""
    result = selection.result
    timestamps = np.ascontiguousarray(result.timestamps, dtype=np.int64)
    rows = len(timestamps)
    # NOTE: from_buffers wraps the store's int64 memory; pa.array could copy it.
    times = pa.Array.from_buffers(schema.field(0).type, rows, [None, pa.py_buffer(timestamps)])
    if selection.layout == WIDE:
        yield _part(_wide_batches(times, result.columns, schema), schema)
        return
    if rows == 0:
        return
    offsets = {}  # (name length, rows) -> int32 offsets 0, L, 2L, ..., shared by hubs
    for name, column in zip(result.names, result.columns):
        yield _part(_hub_batches(times, name, column, schema, offsets), schema)


def _wide_batches(times, columns, schema):
    step = rows_per_batch(8 * (1 + len(columns)) + (len(columns) + 7) // 8)
    for start in range(0, len(times), step):
        prices = [column.slice(start, step) for column in columns]
        batch = pa.RecordBatch.from_arrays([times.slice(start, step), *prices], schema=schema)
        yield batch, _fixed_width_bytes(batch.num_rows, prices)


def _hub_batches(times, name, column, schema, offsets):
    encoded = name.encode()
    step = rows_per_batch(8 + 4 + len(encoded) + 8 + 1)
    # PERF: one hub array per series, sliced for every batch of that series
    hubs = _repeated(encoded, min(step, len(times)), offsets)
    for start in range(0, len(times), step):
        price = column.slice(start, step)
        count = len(price)
        batch = pa.RecordBatch.from_arrays([times.slice(start, step), hubs.slice(0, count), price], schema=schema)
        yield batch, _fixed_width_bytes(count, [price]) + 4 * (count + 1) + count * len(encoded)


def _part(batches_and_bytes, schema):
    batches, total = [], 0
    for batch, wire_bytes in batches_and_bytes:
        batches.append(batch)
        total += wire_bytes
    return pa.Table.from_batches(batches, schema=schema), total


def _repeated(encoded, rows, offsets):
    """A utf8 array of ``rows`` copies of ``encoded`` (valid UTF-8), built from
    two buffers (PERF: several times faster than ``pa.repeat``)."""
    width = len(encoded)
    key = (width, rows)
    if key not in offsets:
        offsets[key] = pa.py_buffer(np.arange(0, (rows + 1) * width, width, dtype=np.int32))
    return pa.Array.from_buffers(pa.utf8(), rows, [None, offsets[key], pa.py_buffer(encoded * rows)])


def _fixed_width_bytes(rows, price_columns):
    """Bytes of one batch's timestamps and float64 columns on the wire."""
    bitmaps = sum((rows + 7) // 8 for c in price_columns if c.null_count)
    return 8 * rows * (1 + len(price_columns)) + bitmaps


def result_counts(selection, schema):
    """``(total_records, total_bytes)`` of what do_get sends, as FlightInfo
    reports them (the parts are built and dropped one at a time)."""
    records = total_bytes = 0
    for table, wire_bytes in result_parts(selection, schema):
        records += table.num_rows
        total_bytes += wire_bytes
    return records, total_bytes
