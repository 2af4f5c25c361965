"""Pure-Python twin of ext/jsonwrite.pyx: the same ``write_prices``, written the
obvious way. It is the test oracle for the kernel and the fallback when the
extension is not built, so it favours plain correctness over speed.
"""
import json
import math
from datetime import datetime, timezone

import numpy as np
import pyarrow as pa

from ercot_fast import timeutil
from ercot_fast.errors import KernelInputError

# Local times must fall in years 0001..9999, as datetime allows.
_MIN_LOCAL_MS = timeutil.to_ms(datetime.min.replace(tzinfo=timezone.utc))
_MAX_LOCAL_MS = timeutil.to_ms(datetime.max.replace(tzinfo=timezone.utc))
_MAX_OFFSET_MIN = 24 * 60 - 1


class PriceTable:
    """Sorted UTC instants and float64 Arrow columns, checked once; ``write``
    renders a slice of them (see ext/jsonwrite.pyx)."""

    def __init__(self, timestamps, names, columns):
        _check_array(timestamps, np.int64, "timestamps")
        names = tuple(names)
        columns = tuple(columns)
        if len(names) != len(columns):
            raise KernelInputError(f"{len(names)} names but {len(columns)} columns")
        if not all(isinstance(name, str) for name in names):
            raise KernelInputError("names must be str")
        for ms in timestamps.tolist():
            _stamp(ms, None)  # raises for instants outside years 0001..9999
        for column in columns:
            _check_column(column, len(timestamps))
        self.timestamps = timestamps
        self.names = names
        self._columns = columns

    def __len__(self):
        return len(self.timestamps)

    def write(self, lo, hi, column_indices, utc_offsets=None):
        """The /api/prices body for rows [lo, hi) of the columns at ``column_indices``."""
        if not 0 <= lo <= hi <= len(self):
            raise KernelInputError(f"rows [{lo}, {hi}) are not within the table's {len(self)}")
        n = hi - lo
        if utc_offsets is not None:
            _check_array(utc_offsets, np.int32, "utc_offsets", n)
        column_indices = tuple(column_indices)
        for index in column_indices:
            if not 0 <= index < len(self.names):
                raise KernelInputError(f"no column {index} in a table of {len(self.names)}")
        offsets = [None] * n if utc_offsets is None else utc_offsets.tolist()
        stamps = [_stamp(ms, offset) for ms, offset in zip(self.timestamps[lo:hi].tolist(), offsets)]
        series = [
            '{"hub":'
            + json.dumps(self.names[index])
            + ',"prices":['
            + ",".join(map(_price, self._columns[index].slice(lo, n).to_pylist()))
            + "]}"
            for index in column_indices
        ]
        return ('{"timestamps":[' + ",".join(stamps) + '],"data":[' + ",".join(series) + "]}").encode()


def write_prices(timestamps, utc_offsets, names, columns):
    """Write a whole price table as compact JSON bytes: the PriceTable of
    (timestamps, names, columns), all rows and columns."""
    table = PriceTable(timestamps, names, columns)
    return table.write(0, len(table), range(len(table.names)), utc_offsets)


def _stamp(ms, offset):
    """'"YYYY-MM-DDTHH:MM:SS[.mmm]Z"' in UTC, or local time with its offset."""
    local_ms = ms + 60_000 * (offset or 0)
    if not _MIN_LOCAL_MS <= local_ms <= _MAX_LOCAL_MS or abs(offset or 0) > _MAX_OFFSET_MIN:
        raise KernelInputError(
            f"timestamp {ms} with utc offset {offset} is out of range",
            "local times must lie in years 0001..9999 and offsets within +-1439 minutes",
        )
    return f'"{timeutil.format_instant(ms, offset)}"'


def _price(value):
    return "null" if value is None or not math.isfinite(value) else repr(value)


def _check_array(array, dtype, what, length=None):
    if not isinstance(array, np.ndarray) or array.dtype != dtype or array.ndim != 1:
        raise KernelInputError(
            f"{what} must be a 1-D numpy {np.dtype(dtype)} array",
            f"got {type(array).__name__} {getattr(array, 'dtype', '')}",
        )
    if not (array.flags.c_contiguous and array.flags.aligned):
        raise KernelInputError(f"{what} must be C-contiguous and aligned", "pass np.ascontiguousarray(...) of it")
    if length is not None and len(array) != length:
        raise KernelInputError(f"{what} has {len(array)} rows, timestamps {length}")


def _check_column(column, n):
    # NOTE: the kernel reads the values buffer as a C double array, hence the
    # alignment check; pa.array always allocates aligned buffers.
    if not isinstance(column, pa.Array) or column.type != pa.float64():
        raise KernelInputError(
            "each column must be a pyarrow.Array of float64",
            f"got {type(column).__name__} {getattr(column, 'type', '')}",
        )
    if len(column) != n:
        raise KernelInputError(f"a column has {len(column)} values, timestamps {n}")
    validity, values = column.buffers()
    end = column.offset + n
    if n and (
        values is None
        or values.size < 8 * end
        or values.address % 8
        or (validity is not None and validity.size < (end + 7) // 8)
    ):
        raise KernelInputError(
            "a column's buffers are too short or misaligned",
            "build it with pyarrow (pa.array) rather than from_buffers",
        )
