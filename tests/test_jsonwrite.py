"""write_prices: the compiled JSON writer against its pure-Python twin, json.loads,
datetime and zoneinfo."""
import csv
import json
import math
import os
import struct
import subprocess
import sys
from datetime import datetime, timedelta, timezone
from pathlib import Path
from zoneinfo import ZoneInfo

import numpy as np
import pyarrow as pa
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ercot_fast.kernels import _jsonwrite_py as twin
from ercot_fast.errors import KernelInputError
from kernel_params import kernel_and_twin
from reference_layout import SHARED_DATA

IMPLEMENTATIONS = kernel_and_twin("ercot_fast.kernels._jsonwrite", "ercot_fast.kernels._jsonwrite_py")
DATA = SHARED_DATA
BENCH = Path(__file__).resolve().parents[1] / "bench" / "bench_jsonwrite.py"
CHICAGO = ZoneInfo("America/Chicago")
EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)
MIN_MS = -62135596800000  # 0001-01-01T00:00:00.000
MAX_MS = 253402300799999  # 9999-12-31T23:59:59.999
DAY_MS = 86_400_000

# Values where a float printer most often goes wrong; repr gives the expected text.
EXAMPLES = [
    -0.0, 0.0, 5e-324, 2.2250738585072014e-308, 1e308, 1.7976931348623157e308, -1.7976931348623157e308,
    0.1 + 0.2, 1e15, 1e16, 123456789012.34, 0.01, -0.05, 0.005, 45.2, 45.0, 45.23, 8998.99, -31.66,
    1e-4, 1e-5, 99.99, 9.995, 0.07, 2**46 - 0.01, 2**46 + 0.09375, 2.0**46, 2.0**53, 70368744177663.99,
    70368744177664.23,  # 2**46 + 15/64: .23 and .24 both round to it; repr prints the nearer
    # the four-decimal path (hourly means of cents) and its edge at 2**39
    12.935, 0.0025, -0.0001, 0.001, 1.1, 18.1725, 549755813887.9999, 549755813888.0001, 2.0**39 + 2**-13,
]


def bits(x):
    return struct.pack("<d", x)


def write_and_check(impl, timestamps, offsets, names, columns):
    """impl's bytes equal the twin's and parse back to exactly the input; returns the document."""
    out = impl.write_prices(timestamps, offsets, names, columns)
    assert out == twin.write_prices(timestamps, offsets, names, columns)
    document = json.loads(out)
    assert len(document["timestamps"]) == len(timestamps)
    assert [series["hub"] for series in document["data"]] == names
    for series, column in zip(document["data"], columns, strict=True):
        for got, want in zip(series["prices"], column.to_pylist(), strict=True):
            if want is None or not math.isfinite(want):
                assert got is None
            else:
                assert isinstance(got, float) and bits(got) == bits(want), (got, want)
    return document


prices = st.one_of(
    st.floats(width=64),  # NaN, infinities, -0.0, subnormals, huge
    st.integers(-10**9, 10**9).map(lambda cents: cents / 100),  # whole cents, the fast path
    st.integers(2**46 * 100 - 10**4, 2**46 * 100 + 10**4).map(lambda cents: cents / 100),  # its edge
    st.integers(-(10**11), 10**11).map(lambda units: units / 10**4),  # four decimals, the second path
    st.integers(2**39 * 10**4 - 10**6, 2**39 * 10**4 + 10**6).map(lambda units: units / 10**4),  # its edge
    st.integers(-(2**52), 2**52).map(lambda k: k / 64),  # binary fractions around the edge
    st.sampled_from(EXAMPLES),
)


@st.composite
def tables(draw):
    """(timestamps, utc_offsets, names, columns): arrays are slices of larger ones."""
    n = draw(st.integers(0, 20))
    before, after = draw(st.integers(0, 9)), draw(st.integers(0, 3))
    total = before + n + after
    stamps = draw(st.lists(st.integers(MIN_MS + DAY_MS, MAX_MS - DAY_MS), min_size=total, max_size=total))
    timestamps = np.array(stamps, dtype=np.int64)[before : before + n]
    offsets = draw(st.none() | st.lists(st.integers(-1439, 1439), min_size=n, max_size=n))
    if offsets is not None:
        offsets = np.array(offsets, dtype=np.int32)
    names = draw(st.lists(st.text(max_size=8), max_size=3))
    columns = []
    for _ in names:
        values = draw(st.lists(prices, min_size=total, max_size=total))
        nulls = draw(st.none() | st.lists(st.booleans(), min_size=total, max_size=total))
        mask = None if nulls is None else np.array(nulls, dtype=bool)
        columns.append(pa.array(values, type=pa.float64(), mask=mask).slice(before, n))
    return timestamps, offsets, names, columns


@pytest.mark.parametrize("impl", IMPLEMENTATIONS)
@settings(max_examples=400, deadline=None)
@given(table=tables())
def test_matches_twin_and_round_trips(impl, table):
    write_and_check(impl, *table)


@pytest.mark.parametrize("impl", IMPLEMENTATIONS)
@pytest.mark.parametrize("value", EXAMPLES + [math.inf, -math.inf, math.nan, None])
def test_examples(impl, value):
    out = impl.write_prices(np.zeros(1, dtype=np.int64), None, ["x"], [pa.array([value], pa.float64())])
    text = "null" if value is None or not math.isfinite(value) else repr(value)
    assert out == b'{"timestamps":["1970-01-01T00:00:00Z"],"data":[{"hub":"x","prices":[' + text.encode() + b"]}]}"


def _printed(impl, values):
    """The texts impl prints for ``values`` (one series)."""
    out = impl.write_prices(np.zeros(len(values), dtype=np.int64), None, ["x"], [pa.array(values, pa.float64())])
    return out.split(b'"prices":[')[1].removesuffix(b"]}]}").decode().split(",")


def _edge_doubles():
    """Powers of ten and their neighbours, the fixed/exponent switch (1e-4, 1e-5, 1e16, 1e17),
    2**k and its neighbours, subnormals, the extremes."""
    values = []
    for k in range(-325, 309):
        x = 10.0**k if -324 < k < 309 else 5e-324
        values += [x, math.nextafter(x, 0), math.nextafter(x, math.inf)]
    for k in range(-1074, 1024):
        x = math.ldexp(1.0, k)
        values += [x, math.nextafter(x, 0), math.nextafter(x, math.inf)]
    values += [5e-324 * i for i in range(1, 200)] + [1.7976931348623157e308, 2.2250738585072014e-308, 9007199254740993.0]
    return [v for v in values if math.isfinite(v) and v != 0] + [-v for v in values[:500] if math.isfinite(v)]


@pytest.mark.parametrize("impl", IMPLEMENTATIONS)
def test_shortest_digits_equal_repr_on_random_and_edge_doubles(impl):
    """The kernel prints every double as repr does (Zmij's digits, CPython's layout): random bit
    patterns over every exponent, random prices and means, and the edges."""
    rng = np.random.default_rng(20210216)
    patterns = rng.integers(0, 2**64, 200_000, dtype=np.uint64, endpoint=False).view(np.float64)
    prices = np.concatenate([rng.uniform(-250, 9000, 100_000), rng.uniform(-1, 1, 50_000) * 10.0 ** rng.integers(-8, 20, 50_000),
                             np.round(rng.uniform(0, 9000, 50_000), 2) / rng.integers(1, 25, 50_000)])
    values = [float(v) for v in np.concatenate([patterns, prices]) if math.isfinite(v)] + _edge_doubles()
    printed = _printed(impl, values)
    wrong = [(v, text) for v, text in zip(values, printed) if text != repr(v)]
    assert len(printed) == len(values) and not wrong, wrong[:10]


def real_prices():
    """Every SettlementPointPrice in the NP4-190-CD and NP6-905-CD copies, one list per file."""
    files = sorted((DATA / "np4_190_cd").glob("*.csv")) + sorted((DATA / "np6_905_cd").glob("*.csv"))
    assert len(files) == 6
    for path in files:
        with path.open(newline="") as handle:
            yield path.name, [float(row["SettlementPointPrice"]) for row in csv.DictReader(handle)]


@pytest.mark.usefixtures("real_data")
@pytest.mark.parametrize("impl", IMPLEMENTATIONS)
def test_real_ercot_prices(impl):
    for name, values in real_prices():
        column = pa.array(values, type=pa.float64())
        # the same numbers sliced (offset 1) with every third one null
        nulls = np.arange(len(values) + 1) % 3 == 0
        masked = pa.array([math.nan] + values, type=pa.float64(), mask=nulls).slice(1)
        timestamps = np.arange(len(values), dtype=np.int64) * 900_000 + 1_546_300_800_000
        write_and_check(impl, timestamps, None, [name, "masked"], [column, masked])


@pytest.mark.parametrize("impl", IMPLEMENTATIONS)
@settings(max_examples=200, deadline=None)
@given(stamps=st.lists(st.integers(MIN_MS, MAX_MS) | st.integers(-(10**12), 5 * 10**12), max_size=30))
def test_utc_stamps_match_datetime(impl, stamps):
    out = impl.write_prices(np.array(stamps, dtype=np.int64), None, [], [])
    expected = [
        (EPOCH + timedelta(milliseconds=ms)).isoformat(timespec="milliseconds" if ms % 1000 else "seconds")
        for ms in stamps
    ]
    assert json.loads(out)["timestamps"] == [text.replace("+00:00", "Z") for text in expected]


def chicago_instants():
    """Every hour of 2019..2024, plus every 15 minutes and some millisecond
    fractions within 3 h of each DST transition, as ms since the epoch."""
    hours = range(int(datetime(2019, 1, 1, tzinfo=timezone.utc).timestamp()) // 3600,
                  int(datetime(2025, 1, 1, tzinfo=timezone.utc).timestamp()) // 3600)
    offsets = {hour: datetime.fromtimestamp(hour * 3600, CHICAGO).utcoffset() for hour in hours}
    transitions = [hour for hour in hours if hour - 1 in offsets and offsets[hour] != offsets[hour - 1]]
    assert len(transitions) == 12  # spring forward and fall back, six years
    near = {
        hour * 3_600_000 + quarter * 900_000 + ms
        for hour in transitions
        for quarter in range(-12, 13)
        for ms in (0, 1, 500, 999)
    }
    return sorted(near | {hour * 3_600_000 for hour in hours})


@pytest.mark.parametrize("impl", IMPLEMENTATIONS)
def test_chicago_local_stamps_match_zoneinfo(impl):
    stamps = chicago_instants()
    offsets = [datetime.fromtimestamp(ms // 1000, CHICAGO).utcoffset() // timedelta(minutes=1) for ms in stamps]
    assert set(offsets) == {-300, -360}
    out = write_and_check(impl, np.array(stamps, dtype=np.int64), np.array(offsets, dtype=np.int32), [], [])
    expected = []
    for ms in stamps:
        local = datetime.fromtimestamp(ms // 1000, CHICAGO).replace(microsecond=ms % 1000 * 1000)
        expected.append(local.isoformat(timespec="milliseconds" if ms % 1000 else "seconds"))
    assert out["timestamps"] == expected
    assert "2020-11-01T01:30:00-05:00" in expected and "2020-11-01T01:30:00-06:00" in expected


@pytest.mark.parametrize("impl", IMPLEMENTATIONS)
@pytest.mark.parametrize(
    "ms,offset,text",
    [
        (0, None, "1970-01-01T00:00:00Z"),
        (-1, None, "1969-12-31T23:59:59.999Z"),
        (1613541600000, -360, "2021-02-17T00:00:00-06:00"),
        (1613541600010, 0, "2021-02-17T06:00:00.010+00:00"),
        (1613541600000, 330, "2021-02-17T11:30:00+05:30"),
        (951782400000, None, "2000-02-29T00:00:00Z"),  # leap day of a year divisible by 400
        (4107542400000, None, "2100-03-01T00:00:00Z"),  # 2100 is not a leap year
        (MIN_MS, None, "0001-01-01T00:00:00Z"),
        (MAX_MS, None, "9999-12-31T23:59:59.999Z"),
        (MIN_MS + 1439 * 60_000, -1439, "0001-01-01T00:00:00-23:59"),
        (MAX_MS - 1439 * 60_000, 1439, "9999-12-31T23:59:59.999+23:59"),
    ],
)
def test_stamp_boundaries(impl, ms, offset, text):
    offsets = None if offset is None else np.array([offset], dtype=np.int32)
    assert impl.write_prices(np.array([ms], dtype=np.int64), offsets, [], []) == (
        b'{"timestamps":["' + text.encode() + b'"],"data":[]}'
    )


@pytest.mark.parametrize("impl", IMPLEMENTATIONS)
def test_empty_zero_series_one_row(impl):
    empty = np.zeros(0, dtype=np.int64)
    sliced_empty = pa.array([1.0, None, 2.0]).slice(2, 0)
    assert impl.write_prices(empty, None, [], []) == b'{"timestamps":[],"data":[]}'
    assert impl.write_prices(empty, np.zeros(0, dtype=np.int32), ["a", "b"], [pa.array([], pa.float64()), sliced_empty]) == (
        b'{"timestamps":[],"data":[{"hub":"a","prices":[]},{"hub":"b","prices":[]}]}'
    )
    assert impl.write_prices(np.array([3_600_000], dtype=np.int64), None, ['H\u00e9 "1"'], [pa.array([8998.99])]) == (
        b'{"timestamps":["1970-01-01T01:00:00Z"],"data":[{"hub":"H\\u00e9 \\"1\\"","prices":[8998.99]}]}'
    )


@pytest.mark.parametrize("impl", IMPLEMENTATIONS)
def test_read_only_buffers(impl):
    """Buffers from IPC or mmap are immutable; the kernel only reads."""
    values = pa.py_buffer(np.array([1.5, 2.25, -3.0]).tobytes())
    column = pa.Array.from_buffers(pa.float64(), 2, [None, values], offset=1)
    timestamps = np.arange(2, dtype=np.int64)
    timestamps.flags.writeable = False
    assert b'"prices":[2.25,-3.0]' in impl.write_prices(timestamps, None, ["a"], [column])


def misaligned_int64():
    return np.frombuffer(bytes(17), dtype=np.int64, offset=1)


ONE = np.zeros(1, dtype=np.int64)
COLUMN = pa.array([1.0])
BAD_INPUTS = {
    "timestamps list": ([0], None, [], []),
    "timestamps float64": (np.zeros(1), None, [], []),
    "timestamps 2-D": (np.zeros((1, 1), dtype=np.int64), None, [], []),
    "timestamps strided": (np.zeros(4, dtype=np.int64)[::2], None, [], []),
    "timestamps big-endian": (np.zeros(1, dtype=">i8"), None, [], []),
    "timestamps misaligned": (misaligned_int64(), None, [], []),
    "offsets int64": (ONE, np.zeros(1, dtype=np.int64), [], []),
    "offsets too short": (ONE, np.zeros(0, dtype=np.int32), [], []),
    "offsets strided": (np.zeros(2, dtype=np.int64), np.zeros(4, dtype=np.int32)[::2], [], []),
    "more names than columns": (ONE, None, ["a", "b"], [COLUMN]),
    "more columns than names": (ONE, None, [], [COLUMN]),
    "name not str": (ONE, None, [1], [COLUMN]),
    "column float32": (ONE, None, ["a"], [pa.array([1.0], pa.float32())]),
    "column int64": (ONE, None, ["a"], [pa.array([1])]),
    "column numpy": (ONE, None, ["a"], [np.ones(1)]),
    "column chunked": (ONE, None, ["a"], [pa.chunked_array([[1.0]])]),
    "column too long": (ONE, None, ["a"], [pa.array([1.0, 2.0])]),
    "column misaligned": (ONE, None, ["a"], [pa.Array.from_buffers(pa.float64(), 1, [None, pa.py_buffer(bytes(9))[1:]])]),
    "year 10000": (np.array([MAX_MS + 1], dtype=np.int64), None, [], []),
    "year 0": (np.array([MIN_MS - 1], dtype=np.int64), None, [], []),
    "int64 extremes": (np.array([2**63 - 1], dtype=np.int64), np.array([1439], dtype=np.int32), [], []),
    "offset one day": (ONE, np.array([1440], dtype=np.int32), [], []),
    "offset pushes out of range": (np.array([MIN_MS], dtype=np.int64), np.array([-1], dtype=np.int32), [], []),
}


@pytest.mark.parametrize("impl", IMPLEMENTATIONS)
@pytest.mark.parametrize("case", BAD_INPUTS)
def test_bad_input_raises(impl, case):
    with pytest.raises(KernelInputError):
        impl.write_prices(*BAD_INPUTS[case])


def test_benchmark_script_runs(tmp_path):
    """The benchmark runs end to end on a tiny table (no time is asserted)."""
    pytest.importorskip("orjson")
    out = tmp_path / "bench.json"
    command = [sys.executable, str(BENCH), "--rows", "48", "--series", "2", "--repeat", "1", "--out", str(out)]
    subprocess.run(command, check=True, capture_output=True, env={**os.environ, "PYTHONPATH": str(BENCH.parents[1])})
    assert "kernel" in json.loads(out.read_text())["seconds"]


@pytest.mark.parametrize("impl", IMPLEMENTATIONS)
@settings(max_examples=200, deadline=None)
@given(table=tables(), data=st.data())
def test_price_table_slices_match_twin(impl, table, data):
    """PriceTable.write of any row range and column choice (repeats, any order)
    equals the twin's, and equals write_prices of the same slices."""
    timestamps, _, names, columns = table
    n = len(timestamps)
    lo = data.draw(st.integers(0, n))
    hi = data.draw(st.integers(lo, n))
    numbers = data.draw(st.lists(st.integers(0, len(names) - 1), max_size=4)) if names else []
    offsets = data.draw(st.none() | st.just(np.full(hi - lo, -360, dtype=np.int32)))
    got = impl.PriceTable(timestamps, names, columns).write(lo, hi, numbers, offsets)
    assert got == twin.PriceTable(timestamps, names, columns).write(lo, hi, numbers, offsets)
    sliced = [columns[i].slice(lo, hi - lo) for i in numbers]
    assert got == twin.write_prices(timestamps[lo:hi], offsets, [names[i] for i in numbers], sliced)


@pytest.mark.parametrize("impl", IMPLEMENTATIONS)
@pytest.mark.parametrize(
    "lo,hi,numbers",
    [(-1, 1, [0]), (0, 3, [0]), (2, 1, [0]), (0, 1, [1]), (0, 1, [-1])],
    ids=["lo negative", "hi past end", "lo after hi", "column past end", "column negative"],
)
def test_price_table_bad_write_raises(impl, lo, hi, numbers):
    table = impl.PriceTable(np.arange(2, dtype=np.int64), ["a"], [pa.array([1.0, 2.0])])
    with pytest.raises(KernelInputError):
        table.write(lo, hi, numbers)
