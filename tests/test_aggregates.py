"""aggregate=, stat= and block= over HTTP, Flight and the client, checked
against an independent pandas computation from the real CSVs (Central-time
periods by pandas' own resample, trading blocks from a hand-written holiday
list), and the aggregate kernel against its pure-Python twin."""
import datetime as dt
import importlib
import json
import math
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ercot_fast.kernels import _aggregate_py
from ercot_fast.query.blocks import block_mask, nerc_holidays
from ercot_fast.query.periods import period_edges
from reference_layout import CENTRAL, DA_CSV, RT_CSV, read_da_csv, read_rt_csv, utc_ms

# NERC holidays as observed, written out by hand from the calendars
HOLIDAYS = {
    2019: ["2019-01-01", "2019-05-27", "2019-07-04", "2019-09-02", "2019-11-28", "2019-12-25"],
    2020: ["2020-01-01", "2020-05-25", "2020-07-04", "2020-09-07", "2020-11-26", "2020-12-25"],
    2021: ["2021-01-01", "2021-05-31", "2021-07-05", "2021-09-06", "2021-11-25", "2021-12-25"],
    2022: ["2022-01-01", "2022-05-30", "2022-07-04", "2022-09-05", "2022-11-24", "2022-12-26"],
    2023: ["2023-01-02", "2023-05-29", "2023-07-04", "2023-09-04", "2023-11-23", "2023-12-25"],
}
PANDAS_RULE = {"daily": "D", "monthly": "MS", "yearly": "YS", "weekly": "W-MON"}


def series_of(prices, point):
    """One settlement point's prices as a pandas Series on a Central-time index."""
    items = sorted((t, p) for (t, name), p in prices.items() if name == point)
    index = pd.DatetimeIndex([t for t, _ in items]).tz_convert("America/Chicago")
    return pd.Series([p for _, p in items], index=index, dtype=float)


@pytest.fixture(scope="module")
def da_north(real_data):
    prices = {}
    for path in DA_CSV.values():
        prices.update(read_da_csv(path))
    return series_of(prices, "HB_NORTH")


@pytest.fixture(scope="module")
def rt_north(real_data):
    prices = {}
    for path in RT_CSV.values():
        prices.update(read_rt_csv(path))
    return series_of(prices, "HB_NORTH")


def in_block(index, block):
    """The block's rows of a Central-time index, computed independently of query.blocks."""
    hour_ending = index.hour + 1
    holidays = {d for days in HOLIDAYS.values() for d in days}
    off_day = (index.day_of_week >= 5) | np.isin(index.strftime("%Y-%m-%d"), list(holidays))
    peak = (hour_ending >= 7) & (hour_ending <= 22)
    return {
        "5x16": peak & ~off_day,
        "onpeak": peak & ~off_day,
        "2x16": peak & off_day,
        "7x8": ~peak,
        "7x24": np.ones(len(index), dtype=bool),
        "offpeak": ~(peak & ~off_day),
    }[block]


def expected(series, aggregate, stat="mean", block=None):
    """pandas' answer: the block's rows, resampled on Central-time periods."""
    if block:
        series = series[in_block(series.index, block)]
    if aggregate == "weekly":
        grouped = series.resample("W-MON", label="left", closed="left")
    else:
        grouped = series.resample(PANDAS_RULE[aggregate])
    return getattr(grouped, stat)() if stat != "count" else grouped.count()


def http(client, **params):
    resp = client.simulate_get("/api/prices", params={"hubs": "HB_NORTH", "price_type": "da", **params})
    assert resp.status_code == 200, resp.text
    return resp.json


def assert_matches(body, want):
    """An answer equals pandas' Series: the same period starts, the same values (to the last few ulps)."""
    stamps = pd.to_datetime(body["timestamps"], utc=True)
    assert list(stamps) == [t.tz_convert("UTC") for t in want.index]
    got = body["data"][0]["prices"]
    for value, (when, target) in zip(got, want.items()):
        if pd.isna(target):
            assert value is None, when
        else:
            assert value == pytest.approx(float(target), rel=1e-12), when


# --- exact means and the examples of the issue ---------------------------------------------------


def test_winter_storm_uri_daily_mean_is_exact(client):
    body = http(client, start_date="2021-02-17", end_date="2021-02-17", aggregate="daily")
    assert body == {"timestamps": ["2021-02-17T06:00:00Z"], "data": [{"hub": "HB_NORTH", "prices": [8833.655]}]}


def test_monthly_onpeak_mean_2020_against_pandas(client, da_north):
    body = http(client, start_date="2020-01-01", end_date="2020-12-31", aggregate="monthly", block="onpeak")
    want = expected(da_north["2020"], "monthly", block="5x16")
    assert len(body["timestamps"]) == 12
    assert_matches(body, want)
    # the alias and the block's own name are one query
    assert body == http(client, start_date="2020-01-01", end_date="2020-12-31", aggregate="monthly", block="5x16")


@pytest.mark.parametrize("aggregate", ["daily", "weekly", "monthly", "yearly"])
@pytest.mark.parametrize("stat", ["mean", "min", "max", "first", "last", "count"])
def test_every_period_and_stat_against_pandas(client, da_north, aggregate, stat):
    body = http(client, start_date="2019-12-20", end_date="2021-01-10", aggregate=aggregate, stat=stat)
    assert_matches(body, expected(da_north["2019-12-20":"2021-01-10"], aggregate, stat))


@pytest.mark.parametrize("block", ["5x16", "2x16", "7x8", "7x24", "offpeak"])
def test_every_block_against_pandas(client, da_north, block):
    body = http(client, start_date="2020-01-01", end_date="2021-12-31", aggregate="monthly", block=block)
    assert_matches(body, expected(da_north["2020":"2021"], "monthly", block=block))


def test_daily_means_across_both_2020_dst_days(client, da_north):
    body = http(client, start_date="2020-03-07", end_date="2020-03-09", aggregate="daily", tz="America/Chicago")
    assert body["timestamps"] == ["2020-03-07T00:00:00-06:00", "2020-03-08T00:00:00-06:00", "2020-03-09T00:00:00-05:00"]
    assert_matches(body, expected(da_north["2020-03-07":"2020-03-09"], "daily"))
    counts = http(client, start_date="2020-03-08", end_date="2020-03-08", aggregate="daily", stat="count")
    assert counts["data"][0]["prices"] == [23]
    fall = http(client, start_date="2020-10-31", end_date="2020-11-02", aggregate="daily", stat="count")
    assert fall["data"][0]["prices"] == [24, 25, 24]
    assert_matches(http(client, start_date="2020-10-31", end_date="2020-11-02", aggregate="daily"),
                   expected(da_north["2020-10-31":"2020-11-02"], "daily"))


def test_blocks_on_the_dst_days_follow_the_wall_clock(client):
    """7x8 is hours ending 01-06 and 23-24: nine hours on the fall-back day
    (both hours ending 02), seven on the spring-forward day (no hour ending 03)."""
    def hours(day, block):
        body = http(client, start_date=day, end_date=day, block=block, tz="America/Chicago")
        return [t[11:16] for t in body["timestamps"]]

    assert hours("2020-11-01", "7x8") == ["00:00", "01:00", "01:00", "02:00", "03:00", "04:00", "05:00", "22:00", "23:00"]
    assert hours("2020-03-08", "7x8") == ["00:00", "01:00", "03:00", "04:00", "05:00", "22:00", "23:00"]
    # a Sunday: its 16 peak hours are 2x16, none 5x16
    assert len(hours("2020-11-01", "2x16")) == 16 and hours("2020-11-01", "5x16") == []


def test_holiday_weeks(client, da_north):
    """Thanksgiving 2020 (a Thursday) and Independence Day 2021 (a Sunday,
    observed on Monday 5 July) are off-peak days."""
    for start, end, holiday in (("2020-11-23", "2020-11-27", 3), ("2021-07-05", "2021-07-09", 0)):
        onpeak = http(client, start_date=start, end_date=end, aggregate="daily", stat="count", block="5x16")
        weekend = http(client, start_date=start, end_date=end, aggregate="daily", stat="count", block="2x16")
        want = [0 if i == holiday else 16 for i in range(5)]
        # the grid runs from the first kept interval's period to the last one's
        if holiday == 0:
            assert onpeak["data"][0]["prices"] == want[1:] and weekend["data"][0]["prices"] == [16]
        else:
            assert onpeak["data"][0]["prices"] == want and weekend["data"][0]["prices"] == [16]
        means = http(client, start_date=start, end_date=end, aggregate="daily", block="5x16")
        assert_matches(means, expected(da_north[start:end], "daily", block="5x16"))
        if holiday:
            assert means["data"][0]["prices"][holiday] is None  # a period with no value is null


def test_nerc_holidays_as_written_out_by_hand():
    for year, days in HOLIDAYS.items():
        assert [d.isoformat() for d in nerc_holidays(year)] == days


def test_real_time_15_minute_intervals_fall_in_their_hour(client, rt_north):
    """A 15-minute interval starting 06:15 lies in hour ending 07: block 5x16
    keeps 64 intervals of a weekday."""
    body = http(client, price_type="rt", resolution="15min", start_date="2021-02-15", end_date="2021-02-19",
                aggregate="daily", block="5x16")
    assert_matches(body, expected(rt_north["2021-02-15":"2021-02-19"], "daily", block="5x16"))
    counts = http(client, price_type="rt", resolution="15min", start_date="2021-02-16", end_date="2021-02-16",
                  aggregate="daily", stat="count", block="5x16")
    assert counts["data"][0]["prices"] == [64]
    hourly = http(client, price_type="rt", resolution="15min", start_date="2021-02-16", end_date="2021-02-16",
                  aggregate="hourly", stat="max", tz="America/Chicago")
    assert len(hourly["timestamps"]) == 24
    assert_matches(hourly, rt_north["2021-02-16"].resample("h").max())


def test_block_without_aggregate_keeps_the_intervals(client, da_north):
    body = http(client, start_date="2020-11-23", end_date="2020-11-29", block="5x16")
    want = da_north["2020-11-23":"2020-11-29"]
    want = want[in_block(want.index, "5x16")]
    assert len(body["timestamps"]) == 4 * 16
    assert_matches(body, want)


def test_combined_and_ancillary_aggregate_every_series(client):
    body = http(client, price_type="combined", start_date="2021-02-16", end_date="2021-02-17", aggregate="daily")
    names = [s["hub"] for s in body["data"]]
    assert names[:2] == ["DA_HB_NORTH", "RT_HB_NORTH"] and len(body["timestamps"]) == 2
    single = http(client, price_type="da", start_date="2021-02-16", end_date="2021-02-17", aggregate="daily")
    assert body["data"][0]["prices"] == single["data"][0]["prices"]


@pytest.mark.parametrize(
    "params, words",
    [
        ({"aggregate": "fortnightly"}, ["unknown aggregate", "daily"]),
        ({"stat": "median", "aggregate": "daily"}, ["unknown stat", "mean"]),
        ({"stat": "max"}, ["stat needs an aggregate"]),
        ({"block": "6x16"}, ["unknown block", "5x16"]),
    ],
)
def test_bad_shaping_is_a_400_that_says_what_to_use(client, params, words):
    resp = client.simulate_get("/api/prices", params={"hubs": "HB_NORTH", "price_type": "da", "start_date": "2021-02-17",
                                                      "end_date": "2021-02-17", **params})
    assert resp.status_code == 400
    text = resp.json["error"] + " " + resp.json["details"]
    assert all(w in text for w in words), text


def test_empty_range_with_an_aggregate(client):
    body = http(client, start_date="2030-01-01", end_date="2030-01-31", aggregate="monthly")
    assert body == {"timestamps": [], "data": [{"hub": "HB_NORTH", "prices": []}]}


# --- period edges and blocks ---------------------------------------------------------------------


def test_period_edges_are_central_market_periods():
    first, last = utc_ms(2020, 11, 1, 6), utc_ms(2020, 11, 3, 5)  # 01:00 CDT Nov 1 .. 23:00 CST Nov 2
    days = period_edges(first, last, "daily")
    assert [dt.datetime.fromtimestamp(e / 1000, CENTRAL).isoformat() for e in days] == [
        "2020-11-01T00:00:00-05:00", "2020-11-02T00:00:00-06:00", "2020-11-03T00:00:00-06:00"]
    assert np.diff(days).tolist() == [25 * 3600_000, 24 * 3600_000]
    weeks = period_edges(utc_ms(2021, 2, 17, 12), utc_ms(2021, 2, 17, 12), "weekly")
    assert dt.datetime.fromtimestamp(weeks[0] / 1000, CENTRAL).isoformat() == "2021-02-15T00:00:00-06:00"  # a Monday


def test_block_mask_by_hour_ending():
    day = utc_ms(2021, 2, 16, 6)  # a Tuesday, 00:00 CST
    quarter_hours = np.arange(day, day + 24 * 3600_000, 900_000, dtype=np.int64)
    mask = block_mask(quarter_hours, "5x16")
    assert mask.sum() == 64 and not mask[4 * 6 - 1] and mask[4 * 6]  # 06:00 starts hour ending 07


# --- the kernel against its twin -------------------------------------------------------------------


@pytest.fixture(scope="module")
def compiled():
    """The compiled kernel (skipped when it did not build; ERCOT_FAST_REQUIRE_EXT=1 fails instead)."""
    try:
        return importlib.import_module("ercot_fast.kernels._aggregate")
    except ImportError as exc:
        if os.environ.get("ERCOT_FAST_REQUIRE_EXT") == "1":
            raise
        pytest.skip(f"the aggregate kernel is not built: {exc}")


prices = st.one_of(
    st.integers(-25_000, 900_000).map(lambda c: c / 100),  # whole cents, ERCOT's prices
    st.floats(-1e6, 1e6, allow_nan=False),  # anything else: compensated sums
)


@st.composite
def aggregate_inputs(draw):
    stamps = np.array(sorted(draw(st.sets(st.integers(0, 500), max_size=80))), dtype=np.int64)
    values = draw(st.lists(st.one_of(st.none(), prices), min_size=len(stamps), max_size=len(stamps)))
    edges = np.array(sorted(draw(st.lists(st.integers(-10, 510), min_size=1, max_size=12))), dtype=np.int64)
    mask = draw(st.one_of(st.none(), st.lists(st.booleans(), min_size=len(stamps), max_size=len(stamps))))
    offset = draw(st.integers(0, 9))  # a slice of a longer array, as the store hands them out
    column = pa.array([1.5] * offset + values, pa.float64()).slice(offset)
    return stamps, edges, column, None if mask is None else np.array(mask, dtype=bool)


@settings(max_examples=300, deadline=None)
@given(aggregate_inputs(), st.sampled_from(_aggregate_py.STATS))
def test_kernel_equals_its_twin(compiled, inputs, stat):
    stamps, edges, column, mask = inputs
    got = compiled.aggregate(stamps, edges, column, stat, mask)
    want = _aggregate_py.aggregate(stamps, edges, column, stat, mask)
    assert np.array_equal(got, want, equal_nan=True) and got.dtype == np.float64


@settings(max_examples=200, deadline=None)
@given(st.lists(st.integers(-25_000, 900_000), min_size=1, max_size=200))
def test_means_of_cents_are_the_nearest_double(compiled, cents):
    """The exact mean (integer cents, one division) is the double nearest the true mean."""
    from fractions import Fraction

    values = pa.array([c / 100 for c in cents])
    stamps = np.arange(len(cents), dtype=np.int64)
    edges = np.array([0, len(cents)], dtype=np.int64)
    exact = float(Fraction(sum(cents), 100 * len(cents)))
    for kernel in (compiled, _aggregate_py):
        assert kernel.aggregate(stamps, edges, values, "mean")[0] == exact


def test_kernel_on_the_real_data_equals_its_twin(compiled, utc_store):
    dataset = utc_store.datasets["real_time_15min"]
    edges = period_edges(int(dataset.timestamps[0]), int(dataset.timestamps[-1]), "daily")
    mask = block_mask(dataset.timestamps, "5x16")
    for name in ("HB_NORTH", "HB_WEST", "LZ_HOUSTON"):
        for stat in _aggregate_py.STATS:
            got = compiled.aggregate(dataset.timestamps, edges, dataset.columns[name], stat, mask)
            want = _aggregate_py.aggregate(dataset.timestamps, edges, dataset.columns[name], stat, mask)
            assert np.array_equal(got, want, equal_nan=True)


@pytest.mark.parametrize("kernel", ["compiled", "twin"])
def test_kernel_refuses_bad_input(compiled, kernel):
    from ercot_fast.errors import KernelInputError

    kernel = compiled if kernel == "compiled" else _aggregate_py
    stamps = np.arange(3, dtype=np.int64)
    edges = np.array([0, 3], dtype=np.int64)
    for args in (
        (stamps, edges, pa.array([1.0, 2.0]), "mean"),  # column too short
        (stamps, edges, pa.array([1, 2, 3]), "mean"),  # not float64
        (stamps, edges, pa.array([1.0, 2.0, 3.0]), "median"),
        (stamps, edges[::-1].copy(), pa.array([1.0, 2.0, 3.0]), "mean"),  # edges not sorted
        (stamps.astype(np.int32), edges, pa.array([1.0, 2.0, 3.0]), "mean"),
    ):
        with pytest.raises(KernelInputError):
            kernel.aggregate(*args)
    assert math.isnan(kernel.aggregate(stamps, np.array([5, 9], dtype=np.int64), pa.array([1.0, 2.0, 3.0]), "mean")[0])


def test_the_aggregate_benchmark_runs_and_agrees_with_pandas(tmp_path):
    """bench/bench_aggregate.py in its shortest mode: it checks our monthly
    on-peak means against pandas' before it times anything (no time asserted)."""
    bench = Path(__file__).resolve().parents[1] / "bench" / "bench_aggregate.py"
    out = tmp_path / "aggregate.json"
    subprocess.run([sys.executable, str(bench), "--repeat", "1", "--out", str(out)], check=True, capture_output=True)
    report = json.loads(out.read_text())
    assert report["results"]["every settlement point"]["points"] == 20
    assert report["results"]["1 settlement point"]["intervals"] == 35040  # a year of 15-minute intervals
