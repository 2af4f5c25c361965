"""Kernel micro-benchmarks (pytest-benchmark), one group per question, each
kernel beside its pure-Python twin and the obvious library baseline (numpy,
orjson), on the same seeded data:

    python -m pytest bench/ --benchmark-enable --benchmark-only      # timed, a table per group
    python -m pytest bench/                                           # each once, as tests (CI)

Every benchmark also checks that its competitor gives the same answer as the
kernel, so a faster wrong answer never counts.
"""
import json

import numpy as np
import orjson
import pyarrow as pa
import pytest

from bench_jsonwrite import ORJSON_OPTIONS, make_table
from ercot_fast.kernels import _aggregate, _aggregate_py, _jsonwrite, _jsonwrite_py, _search, _search_py

ROWS, SERIES = 8760, 4  # a year of hourly prices, four settlement points: the analyst's pull
HOUR_MS = 3_600_000


KINDS = {"cents": 0.0, "arbitrary doubles": 1.0}  # the share of values that are not whole cents


@pytest.fixture(scope="module", params=list(KINDS))
def table(request):
    """(kind, (timestamps, names, pyarrow columns, numpy arrays)): whole cents, or every value a full double."""
    return request.param, make_table(ROWS, SERIES, seed=20210215, non_cents=KINDS[request.param])


# --- slice bounds: binary search of a range -------------------------------------------------------

SLICE_COMPETITORS = {
    "kernel": _search.slice_bounds,
    "twin": _search_py.slice_bounds,
    "numpy": lambda ts, start, end: (int(np.searchsorted(ts, start, "left")), int(np.searchsorted(ts, end, "right"))),
}


@pytest.mark.parametrize("competitor", list(SLICE_COMPETITORS))
def test_slice_bounds(benchmark, competitor):
    benchmark.group = "slice bounds (a week in six years of 15-minute instants)"
    timestamps = 1_546_300_800_000 + 900_000 * np.arange(6 * 35_040, dtype=np.int64)
    start, end = int(timestamps[100_000]), int(timestamps[100_000 + 7 * 96 - 1])
    assert benchmark(SLICE_COMPETITORS[competitor], timestamps, start, end) == (100_000, 100_000 + 7 * 96)


# --- JSON of a year of prices -------------------------------------------------------------------


def _orjson(timestamps, names, arrays):
    data = [{"hub": name, "prices": prices} for name, prices in zip(names, arrays)]
    return orjson.dumps({"timestamps": timestamps.astype("datetime64[ms]"), "data": data}, option=ORJSON_OPTIONS)


@pytest.mark.parametrize("competitor", ["kernel", "twin", "orjson"])
def test_json_of_a_year(benchmark, table, competitor):
    kind, (timestamps, names, columns, arrays) = table
    benchmark.group = f"JSON of a year of hourly prices, {SERIES} series: {kind}"
    if competitor == "orjson":  # NOTE: orjson has no nulls: the arrays' NaN-free values
        body = benchmark(_orjson, timestamps, names, arrays)
        expected = json.loads(_jsonwrite.write_prices(timestamps, None, names, [pa.array(a) for a in arrays]))
    else:
        writer = _jsonwrite.write_prices if competitor == "kernel" else _jsonwrite_py.write_prices
        body = benchmark(writer, timestamps, None, names, columns)
        expected = json.loads(_jsonwrite_py.write_prices(timestamps, None, names, columns))
    document = json.loads(body)
    assert [t.replace("+00:00", "Z") for t in document["timestamps"]] == expected["timestamps"]
    assert document["data"] == expected["data"]


# --- aggregates: daily means ----------------------------------------------------------------------


def _numpy_daily_means(timestamps, edges, values):
    starts = np.searchsorted(timestamps, edges[:-1], "left")
    sums = np.add.reduceat(values, starts)
    counts = np.diff(np.append(starts, len(values)))
    return sums / counts


@pytest.mark.parametrize("competitor", ["kernel", "twin", "numpy"])
def test_daily_means(benchmark, table, competitor):
    kind, (timestamps, _, columns, arrays) = table
    benchmark.group = f"daily means of a year of hourly prices: {kind}"
    edges = timestamps[0] + 24 * HOUR_MS * np.arange(ROWS // 24 + 1, dtype=np.int64)
    column = pa.array(arrays[0])  # without nulls: numpy's reduceat has no mask
    if competitor == "numpy":
        means = benchmark(_numpy_daily_means, timestamps, edges, arrays[0])
    else:
        aggregate = _aggregate.aggregate if competitor == "kernel" else _aggregate_py.aggregate
        means = benchmark(aggregate, timestamps, edges, column, "mean")
    exact = _aggregate_py.aggregate(timestamps, edges, column, "mean")
    np.testing.assert_allclose(means, exact, rtol=1e-12)
