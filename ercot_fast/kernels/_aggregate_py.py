"""Pure-Python twin of ext/aggregate.pyx: the same ``aggregate``, written the
obvious way, computing the same doubles in the same order. It is the test
oracle for the kernel and the fallback when the extension is not built."""
import math
from bisect import bisect_left

import numpy as np
import pyarrow as pa

from ercot_fast.errors import KernelInputError

STATS = ("mean", "min", "max", "first", "last", "count")
_CENTS_MAX_DOLLARS = 1e9
_EXACT_SUM_LIMIT = 2.0**53


def aggregate(timestamps, edges, column, stat, mask=None):
    """The ``stat`` of ``column`` in each period ``[edges[k], edges[k+1])``
    (see ext/aggregate.pyx)."""
    _check(timestamps, np.int64, "timestamps")
    _check(edges, np.int64, "edges")
    if stat not in STATS:
        raise KernelInputError(f"unknown stat {stat!r}", f"use one of {', '.join(STATS)}")
    if not isinstance(column, pa.Array) or column.type != pa.float64() or len(column) != len(timestamps):
        raise KernelInputError("column must be a float64 pyarrow.Array as long as timestamps")
    if mask is not None:
        _check(mask, mask.dtype if mask.dtype in (np.uint8, np.bool_) else np.bool_, "mask")
        if len(mask) != len(timestamps):
            raise KernelInputError(f"mask has {len(mask)} rows, timestamps {len(timestamps)}")
    edges = edges.tolist()
    if any(b < a for a, b in zip(edges, edges[1:])):
        raise KernelInputError("edges must be sorted", "pass ascending period edges")
    stamps = timestamps.tolist()
    values = column.to_pylist()
    keep = [True] * len(values) if mask is None else [bool(m) for m in mask.tolist()]
    out = []
    for start, end in zip(edges, edges[1:]):
        rows = range(bisect_left(stamps, start), bisect_left(stamps, end))
        present = [values[i] for i in rows if keep[i] and values[i] is not None]
        out.append(_stat(present, stat))
    return np.array(out, dtype=np.float64)


def _stat(present, stat):
    if stat == "count":
        return float(len(present))
    if not present:
        return math.nan
    if stat == "mean":
        return _mean(present)
    return {"min": min, "max": max, "first": lambda v: v[0], "last": lambda v: v[-1]}[stat](present)


def _mean(present):
    cents = [round(x * 100.0) for x in present]
    if all(abs(x) < _CENTS_MAX_DOLLARS and c / 100.0 == x for x, c in zip(present, cents)):
        total = sum(cents)
        if abs(total) < _EXACT_SUM_LIMIT:
            return total / (len(present) * 100.0)
    total = compensation = 0.0  # Neumaier's compensated sum, as the kernel adds
    for x in present:
        t = total + x
        compensation += (total - t) + x if abs(total) >= abs(x) else (x - t) + total
        total = t
    return (total + compensation) / len(present)


def _check(array, dtype, what):
    if not isinstance(array, np.ndarray) or array.dtype != dtype or array.ndim != 1:
        raise KernelInputError(f"{what} must be a 1-D numpy {np.dtype(dtype)} array")
