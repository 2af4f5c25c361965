"""Aggregate kernel: one statistic per period of a price column.

    aggregate(timestamps, edges, column, stat, mask=None) -> float64 array

Period k is ``[edges[k], edges[k+1])`` (UTC ms; the Central-time market
periods of ``query.periods``). Its first row is found by binary search over
the sorted timestamps, from the previous period's first row on. Only present
values count (and with ``mask``, only rows where it is true); a period without
one is NaN (``count``: 0).

Means of prices in whole cents (all of ERCOT's) are exact: integer cents
summed and divided once, so the mean is the double nearest the true mean
(8833.655, not 8833.654999999999). Other values are summed with Neumaier's
compensated sum. The pure-Python twin, ercot_fast/kernels/_aggregate_py.py,
computes the same doubles in the same order and is the test oracle.
"""
cimport cython
from libc.math cimport NAN, fabs, round
from libc.stdint cimport int64_t, uint8_t, uintptr_t

import numpy as np
import pyarrow as pa

from ercot_fast.errors import KernelInputError

STATS = ("mean", "min", "max", "first", "last", "count")
FLOAT64 = pa.float64()
# |price| below this many dollars is summed as integer cents: 2**63 cents
# hold 2**26 such values, more than any period has rows
cdef double CENTS_MAX_DOLLARS = 1e9
cdef double EXACT_SUM_LIMIT = 9007199254740992.0  # 2**53: every integer below is a double

cdef enum Stat:
    MEAN, MIN, MAX, FIRST, LAST, COUNT


cdef inline Py_ssize_t first_at_or_after(const int64_t* values, Py_ssize_t lo, Py_ssize_t n, int64_t key) noexcept nogil:
    """Leftmost index in [lo, n) whose value is >= key (n if none)."""
    cdef Py_ssize_t hi = n, mid
    while lo < hi:
        mid = lo + (hi - lo) // 2
        if values[mid] < key:
            lo = mid + 1
        else:
            hi = mid
    return lo


@cython.cdivision(True)
cdef double period_stat(const double* values, const uint8_t* validity, Py_ssize_t offset,
                        const uint8_t* mask, Py_ssize_t lo, Py_ssize_t hi, Stat stat) noexcept nogil:
    cdef Py_ssize_t i, bit, count = 0
    cdef double x, result = NAN, total = 0.0, compensation = 0.0, t, cents
    cdef int64_t cents_total = 0
    cdef bint exact = True
    for i in range(lo, hi):
        if mask != NULL and not mask[i]:
            continue
        bit = offset + i
        if validity != NULL and not (validity[bit >> 3] >> (bit & 7)) & 1:
            continue
        x = values[i]
        count += 1
        if stat == MEAN:
            if exact:
                cents = round(x * 100.0)
                if fabs(x) < CENTS_MAX_DOLLARS and cents / 100.0 == x:
                    cents_total += <int64_t>cents
                else:
                    exact = False
            t = total + x  # Neumaier: the lost low-order part goes to compensation
            if fabs(total) >= fabs(x):
                compensation += (total - t) + x
            else:
                compensation += (x - t) + total
            total = t
        elif stat == MIN:
            if count == 1 or x < result:
                result = x
        elif stat == MAX:
            if count == 1 or x > result:
                result = x
        elif stat == FIRST:
            return x
        elif stat == LAST:
            result = x
    if stat == COUNT:
        return <double>count
    if stat == MEAN:
        if count == 0:
            return NAN
        if exact and fabs(<double>cents_total) < EXACT_SUM_LIMIT:
            return <double>cents_total / (<double>count * 100.0)
        return (total + compensation) / <double>count
    return result


def aggregate(timestamps, edges, column, str stat, mask=None):
    """The ``stat`` of ``column`` (a float64 pyarrow.Array aligned with the
    sorted int64 ``timestamps``) in each period ``[edges[k], edges[k+1])``,
    counting only rows where ``mask`` (bool or uint8, optional) is true."""
    cdef const int64_t[::1] stamps = _checked(timestamps, np.int64, "timestamps")
    cdef const int64_t[::1] bounds = _checked(edges, np.int64, "edges")
    cdef Py_ssize_t n = stamps.shape[0], periods = max(bounds.shape[0] - 1, 0), k, lo, hi, offset
    cdef Stat code
    cdef const uint8_t[::1] keep
    cdef const uint8_t* mask_ptr = NULL
    cdef const double* values = NULL
    cdef const uint8_t* validity = NULL
    if stat not in STATS:
        raise KernelInputError(f"unknown stat {stat!r}", f"use one of {', '.join(STATS)}")
    code = <Stat><int>STATS.index(stat)
    if not isinstance(column, pa.Array) or column.type != FLOAT64 or len(column) != n:
        raise KernelInputError("column must be a float64 pyarrow.Array as long as timestamps",
                               f"got {type(column).__name__} {getattr(column, 'type', '')} of {len(column)}")
    if mask is not None:
        keep = _checked(mask, np.uint8, "mask").view(np.uint8) if mask.dtype == np.uint8 else _checked(mask, np.bool_, "mask").view(np.uint8)
        if keep.shape[0] != n:
            raise KernelInputError(f"mask has {keep.shape[0]} rows, timestamps {n}")
        if n:
            mask_ptr = &keep[0]
    for k in range(1, bounds.shape[0]):
        if bounds[k] < bounds[k - 1]:
            raise KernelInputError("edges must be sorted", "pass ascending period edges")
    buffer_validity, buffer_values = column.buffers()
    offset = column.offset
    cdef uintptr_t address
    if n:
        if buffer_values is None or buffer_values.size < 8 * (offset + n) or buffer_values.address % 8:
            raise KernelInputError("the column's buffers are too short or misaligned", "build it with pyarrow (pa.array)")
        address = buffer_values.address
        values = (<const double*>address) + offset
        if buffer_validity is not None and column.null_count:
            address = buffer_validity.address
            validity = <const uint8_t*>address
    out = np.empty(periods, dtype=np.float64)
    cdef double[::1] result = out
    cdef const int64_t* stamp_ptr = &stamps[0] if n else NULL
    lo = first_at_or_after(stamp_ptr, 0, n, bounds[0]) if periods else 0
    with nogil:
        for k in range(periods):
            hi = first_at_or_after(stamp_ptr, lo, n, bounds[k + 1])
            result[k] = period_stat(values, validity, offset, mask_ptr, lo, hi, code)
            lo = hi
    return out


cdef _checked(array, dtype, str what):
    if not isinstance(array, np.ndarray) or array.dtype != dtype or array.ndim != 1:
        raise KernelInputError(f"{what} must be a 1-D numpy {np.dtype(dtype)} array",
                               f"got {type(array).__name__} {getattr(array, 'dtype', '')}")
    if not array.flags.c_contiguous:
        raise KernelInputError(f"{what} must be C-contiguous", "pass np.ascontiguousarray(...) of it")
    return array
