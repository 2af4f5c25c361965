"""Pure-Python twin of ext/search.pyx: the test oracle and the fallback."""
from bisect import bisect_left, bisect_right

import numpy as np

from ercot_fast.errors import KernelInputError


def slice_bounds(timestamps, start, end):
    """Return ``(lo, hi)`` so that ``timestamps[lo:hi]`` holds every value in
    ``[start, end]`` (both ends inclusive)."""
    if not isinstance(timestamps, np.ndarray) or timestamps.dtype != np.int64 or timestamps.ndim != 1:
        raise KernelInputError("slice_bounds needs a 1-D numpy int64 array")
    if not timestamps.flags.c_contiguous:
        raise KernelInputError("slice_bounds needs a C-contiguous array")
    if len(timestamps) == 0 or start > end:
        return 0, 0
    # bisect works on the array itself: O(log n) element reads, no copy.
    return bisect_left(timestamps, start), bisect_right(timestamps, end)
