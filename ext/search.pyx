# cython: language_level=3
"""Range slicing over the store's sorted int64 timestamp column.

Twin: ercot_fast/kernels/_search_py.py (same names, same results).
"""
from libc.stdint cimport int64_t

import numpy as np

from ercot_fast.errors import KernelInputError


cdef inline Py_ssize_t bisect_i8(const int64_t* values, Py_ssize_t n, int64_t key, bint right) noexcept nogil:
    """First index i with values[i] >= key, or with ``right`` values[i] > key
    (n when none): numpy's searchsorted left and right."""
    cdef Py_ssize_t lo = 0, hi = n, mid
    while lo < hi:
        mid = lo + (hi - lo) // 2
        if values[mid] < key or (right and values[mid] == key):
            lo = mid + 1
        else:
            hi = mid
    return lo


def slice_bounds(timestamps, int64_t start, int64_t end):
    """Return ``(lo, hi)`` so that ``timestamps[lo:hi]`` holds every value in
    ``[start, end]`` (both ends inclusive).

    Preconditions, checked here once: ``timestamps`` is a 1-D C-contiguous
    int64 array sorted ascending. ``start > end`` gives an empty slice.
    """
    if not isinstance(timestamps, np.ndarray) or timestamps.dtype != np.int64 or timestamps.ndim != 1:
        raise KernelInputError("slice_bounds needs a 1-D numpy int64 array")
    if not timestamps.flags.c_contiguous:
        raise KernelInputError("slice_bounds needs a C-contiguous array")
    cdef const int64_t[::1] view = timestamps
    cdef Py_ssize_t n = view.shape[0], lo, hi
    if n == 0 or start > end:
        return 0, 0
    with nogil:
        lo = bisect_i8(&view[0], n, start, False)
        hi = bisect_i8(&view[0], n, end, True)
    return lo, hi
