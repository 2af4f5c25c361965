"""slice_bounds: the compiled kernel against its twin and a brute-force oracle."""
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ercot_fast.errors import KernelInputError
from kernel_params import kernel_and_twin

IMPLEMENTATIONS = kernel_and_twin("ercot_fast.kernels._search", "ercot_fast.kernels._search_py")


def brute_force(values, start, end):
    inside = [i for i, v in enumerate(values) if start <= v <= end]
    if not inside:
        # the empty slice sits where start would be inserted
        lo = sum(1 for v in values if v < start) if start <= end else 0
        return lo, lo
    return inside[0], inside[-1] + 1


@pytest.mark.parametrize("impl", IMPLEMENTATIONS)
@pytest.mark.parametrize(
    "values,start,end,expected",
    [
        ([], 0, 10, (0, 0)),
        ([5], 5, 5, (0, 1)),  # one row, both ends inclusive
        ([5], 6, 9, (1, 1)),  # key after the end
        ([5], 0, 4, (0, 0)),  # key before the start
        ([1, 2, 2, 2, 3], 2, 2, (1, 4)),  # duplicates
        ([1, 2, 3], 3, 1, (0, 0)),  # reversed range is empty
        ([10, 20, 30, 40], 15, 35, (1, 3)),
        ([10, 20, 30, 40], 10, 40, (0, 4)),
        ([-(2**63), 0, 2**63 - 1], -(2**63), 2**63 - 1, (0, 3)),  # int64 extremes
    ],
)
def test_boundaries(impl, values, start, end, expected):
    assert impl.slice_bounds(np.array(values, dtype=np.int64), start, end) == expected


@pytest.mark.parametrize("impl", IMPLEMENTATIONS)
@settings(max_examples=300, deadline=None)
@given(
    values=st.lists(st.integers(-1000, 1000), max_size=60).map(sorted),
    start=st.integers(-1100, 1100),
    end=st.integers(-1100, 1100),
)
def test_matches_brute_force(impl, values, start, end):
    got = impl.slice_bounds(np.array(values, dtype=np.int64), start, end)
    if start > end:
        assert got == (0, 0)
    else:
        assert got == brute_force(values, start, end)


@pytest.mark.parametrize("impl", IMPLEMENTATIONS)
def test_view_with_offset(impl):
    """A slice of a larger array (non-zero offset) is searched in its own coordinates."""
    base = np.arange(0, 100, dtype=np.int64) * 10
    assert impl.slice_bounds(base[50:], 600, 700) == (10, 21)


@pytest.mark.parametrize("impl", IMPLEMENTATIONS)
@pytest.mark.parametrize(
    "bad",
    [np.arange(5, dtype=np.int32), np.arange(10, dtype=np.int64)[::2], [1, 2, 3], np.zeros((2, 2), dtype=np.int64)],
    ids=["int32", "strided", "list", "2-d"],
)
def test_rejects_bad_input(impl, bad):
    with pytest.raises(KernelInputError):
        impl.slice_bounds(bad, 0, 1)


def test_kernel_and_twin_agree_on_real_timestamps(utc_store):
    compiled, twin = (p.values[0] for p in IMPLEMENTATIONS)
    if compiled is None:
        pytest.skip("compiled kernel not built")
    timestamps = utc_store.datasets["day_ahead"].timestamps
    rng = np.random.default_rng(7)
    for start, end in rng.integers(timestamps[0] - 10**9, timestamps[-1] + 10**9, size=(200, 2)):
        assert compiled.slice_bounds(timestamps, int(start), int(end)) == twin.slice_bounds(timestamps, int(start), int(end))
