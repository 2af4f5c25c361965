"""The synthetic data set of ercot_fast.demo: layout, DST-correct market days,
determinism and the market facts it promises.

Market days and local hours are computed here with zoneinfo, row by row,
independently of the vectorised generator.
"""
import datetime as dt
from collections import Counter
from zoneinfo import ZoneInfo

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest

from ercot_fast.demo import AS_PRODUCTS, SETTLEMENT_POINTS, write_demo_data

CENTRAL = ZoneInfo("America/Chicago")
YEARS = (2019, 2020, 2021, 2023)
DATA_SETS = ("DA_prices", "RT_prices_15min", "AS_prices")
HUBS_IN_HUB_AVERAGE = ("HB_HOUSTON", "HB_NORTH", "HB_SOUTH", "HB_WEST")


def offer_cap(year):
    return 9000.0 if year <= 2021 else 5000.0


def hours_in_year(year):
    return 8784 if year % 4 == 0 else 8760


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    data_dir = tmp_path_factory.mktemp("demo")
    return data_dir, write_demo_data(data_dir, years=YEARS)


def read(data_dir, data_set, year):
    return pq.read_table(data_dir / "flattened" / f"{data_set}_{year}.parquet")


def local_times(table):
    """Central local datetime of each row's interval start."""
    utc_ms = table["datetime_ts"].cast(pa.int64()).to_numpy()
    return [dt.datetime.fromtimestamp(ms / 1000, CENTRAL) for ms in utc_ms.tolist()]


def prices(table, column):
    """float64 numpy array, NaN where null."""
    return table[column].to_numpy(zero_copy_only=False).astype(np.float64)


def market_days(table):
    return np.array([local.date() for local in local_times(table)])


def test_files_rows_and_readme(demo):
    data_dir, summary = demo
    expected = {data_dir / "flattened" / f"{data_set}_{year}.parquet" for data_set in DATA_SETS for year in YEARS}
    assert {str(path) for path in expected | {data_dir / "README.txt"}} == set(summary["files"])
    assert set((data_dir / "flattened").iterdir()) == expected  # no temporary files left behind
    for year in YEARS:
        hours = hours_in_year(year)
        assert summary["rows"]["DA_prices"][year] == read(data_dir, "DA_prices", year).num_rows == hours
        assert summary["rows"]["AS_prices"][year] == read(data_dir, "AS_prices", year).num_rows == hours
        assert summary["rows"]["RT_prices_15min"][year] == read(data_dir, "RT_prices_15min", year).num_rows == 4 * hours
    assert summary["bytes"] == sum(path.stat().st_size for path in expected | {data_dir / "README.txt"})
    readme = (data_dir / "README.txt").read_text().lower()
    assert "synthetic" in readme and "not real ercot" in readme and "ercot_fast" in readme
    assert str(summary["seed"]) in readme


@pytest.mark.parametrize("data_set", DATA_SETS)
def test_time_column_is_utc_strictly_increasing_and_covers_the_market_days(demo, data_set):
    data_dir, _ = demo
    step_ms = 900_000 if data_set == "RT_prices_15min" else 3_600_000
    for year in YEARS:
        table = read(data_dir, data_set, year)
        assert table.column_names[0] == "datetime_ts"
        assert table.schema.field("datetime_ts").type == pa.timestamp("ms", tz="UTC")
        utc_ms = table["datetime_ts"].cast(pa.int64()).to_numpy()
        assert np.all(np.diff(utc_ms) == step_ms)  # strictly increasing, unique, no gap
        first_midnight = dt.datetime(year, 1, 1, tzinfo=CENTRAL)
        next_midnight = dt.datetime(year + 1, 1, 1, tzinfo=CENTRAL)
        assert utc_ms[0] == first_midnight.timestamp() * 1000
        assert utc_ms[-1] + step_ms == next_midnight.timestamp() * 1000
        assert {day.year for day in market_days(table)} == {year}


@pytest.mark.parametrize(
    ("data_set", "per_hour"), [("DA_prices", 1), ("AS_prices", 1), ("RT_prices_15min", 4)]
)
def test_dst_market_days_have_23_and_25_hours(demo, data_set, per_hour):
    data_dir, _ = demo
    table = read(data_dir, data_set, 2020)
    counts = Counter(market_days(table))
    spring_forward, fall_back = dt.date(2020, 3, 8), dt.date(2020, 11, 1)
    assert counts[spring_forward] == 23 * per_hour
    assert counts[fall_back] == 25 * per_hour
    assert {n for day, n in counts.items() if day not in (spring_forward, fall_back)} == {24 * per_hour}
    assert len(counts) == 366
    # Both 01:00 local hours of the fall-back day: CDT (-05:00), then CST (-06:00).
    one_am = [local for local in local_times(table) if local.date() == fall_back and local.hour == 1]
    assert [local.utcoffset() for local in one_am[::per_hour]] == [dt.timedelta(hours=-5), dt.timedelta(hours=-6)]
    assert not any(local.date() == spring_forward and local.hour == 2 for local in local_times(table))


def test_columns_types_and_synthetic_metadata(demo):
    data_dir, _ = demo
    for year in YEARS:
        products = [p for p in AS_PRODUCTS if p != "ECRS" or year >= 2023]
        for data_set, columns in (
            ("DA_prices", list(SETTLEMENT_POINTS)),
            ("RT_prices_15min", list(SETTLEMENT_POINTS)),
            ("AS_prices", products),
        ):
            table = read(data_dir, data_set, year)
            assert table.column_names == ["datetime_ts", *sorted(columns)]
            assert all(table.schema.field(c).type == pa.float64() for c in columns)
            metadata = table.schema.metadata
            assert metadata[b"ercot_fast.synthetic"] == b"true"
            assert metadata[b"ercot_fast.generator"] == b"ercot_fast.demo"
    assert len(SETTLEMENT_POINTS) == 20


def test_same_seed_same_bytes_other_seed_other_bytes(demo, tmp_path):
    data_dir, _ = demo
    again, other = tmp_path / "again", tmp_path / "other"
    write_demo_data(again, years=[2021])
    write_demo_data(other, seed=7, years=[2021])
    for data_set in DATA_SETS:
        name = f"flattened/{data_set}_2021.parquet"
        # each year has its own random stream: the same bytes alone or among other years
        assert (again / name).read_bytes() == (data_dir / name).read_bytes()
        # compare prices, not bytes: the seed in the metadata would differ anyway
        ours, theirs = (pq.read_table(d / name).replace_schema_metadata(None) for d in (data_dir, other))
        assert ours["datetime_ts"].equals(theirs["datetime_ts"])
        assert not ours.equals(theirs)


def test_rewrite_in_place_replaces_files_and_leaves_no_temporary_file(tmp_path):
    first = write_demo_data(tmp_path, seed=1, years=[2019])
    before = (tmp_path / "flattened" / "DA_prices_2019.parquet").read_bytes()
    second = write_demo_data(tmp_path, seed=2, years=[2019])
    assert first["files"] == second["files"]
    assert (tmp_path / "flattened" / "DA_prices_2019.parquet").read_bytes() != before
    assert sorted(p.name for p in tmp_path.rglob("*")) == sorted(
        ["README.txt", "flattened", "AS_prices_2019.parquet", "DA_prices_2019.parquet", "RT_prices_15min_2019.parquet"]
    )


@pytest.mark.parametrize("data_set", ["DA_prices", "RT_prices_15min"])
def test_hub_average_is_the_mean_of_four_hubs(demo, data_set):
    data_dir, _ = demo
    for year in YEARS:
        table = read(data_dir, data_set, year)
        hubs = np.array([prices(table, hub) for hub in HUBS_IN_HUB_AVERAGE])
        hub_average = prices(table, "HB_HUBAVG")
        present = ~np.isnan(hubs).any(axis=0) & ~np.isnan(hub_average)
        assert present.mean() > 0.99
        expected = np.round(hubs[:, present].mean(axis=0), 2)
        assert np.max(np.abs(hub_average[present] - expected)) <= 0.005 + 1e-9
        bus_gap = np.abs(prices(table, "HB_BUSAVG") - hub_average)
        assert np.nanmedian(bus_gap) < 1.0


def test_prices_in_cents_within_floor_and_cap_and_cap_reached(demo):
    data_dir, _ = demo
    for year in YEARS:
        for data_set in DATA_SETS:
            table = read(data_dir, data_set, year)
            values = np.concatenate([prices(table, c) for c in table.column_names[1:]])
            values = values[~np.isnan(values)]
            assert values.max() <= offer_cap(year)
            assert values.min() >= -60.0
            assert np.allclose(values * 100, np.round(values * 100), atol=1e-6)
        real_time_north = prices(read(data_dir, "RT_prices_15min", year), "HB_NORTH")
        assert np.nanmax(real_time_north) == offer_cap(year)  # scarcity events reach the cap


def test_winter_storm_uri(demo):
    data_dir, _ = demo
    table = read(data_dir, "DA_prices", 2021)
    days = market_days(table)
    north = prices(table, "HB_NORTH")
    assert np.nanmean(north[days == dt.date(2021, 2, 17)]) > 8000
    assert np.nanmean(north[days == dt.date(2021, 2, 21)]) < 200


def test_negative_prices_mostly_real_time_west_at_night(demo):
    data_dir, _ = demo
    table = read(data_dir, "RT_prices_15min", 2020)
    west = prices(table, "HB_WEST")
    negative = west < 0
    assert negative.sum() > 100
    assert west[negative].min() >= -60.0
    night = np.array([local.hour < 7 or local.hour >= 22 for local in local_times(table)])
    assert negative[night].mean() > 2 * negative[~night].mean()
    day_ahead_west = prices(read(data_dir, "DA_prices", 2020), "HB_WEST")
    assert (day_ahead_west < 0).mean() < negative.mean()
    assert (west < 0).mean() > (prices(table, "HB_NORTH") < 0).mean()


def test_few_scattered_nulls_and_no_nan(demo):
    data_dir, _ = demo
    for data_set in DATA_SETS:
        table = read(data_dir, data_set, 2021)
        nulls = sum(table[c].null_count for c in table.column_names[1:])
        cells = table.num_rows * (table.num_columns - 1)
        assert 0 < nulls < 0.002 * cells
        assert not any(pc.any(pc.is_nan(table[c])).as_py() for c in table.column_names[1:])
    assert read(data_dir, "DA_prices", 2021)["datetime_ts"].null_count == 0


def test_hb_pan_null_before_2019_04_06(demo):
    data_dir, _ = demo
    for data_set in ("DA_prices", "RT_prices_15min"):
        table = read(data_dir, data_set, 2019)
        before = market_days(table) < dt.date(2019, 4, 6)
        pan = prices(table, "HB_PAN")
        assert np.isnan(pan[before]).all()
        assert np.isnan(pan[~before]).mean() < 0.01
        assert np.isnan(prices(read(data_dir, data_set, 2020), "HB_PAN")).mean() < 0.01


def test_ecrs_absent_up_to_2022_and_null_before_launch(demo):
    data_dir, _ = demo
    for year in (2019, 2020, 2021):
        assert "ECRS" not in read(data_dir, "AS_prices", year).column_names
    table = read(data_dir, "AS_prices", 2023)
    before = market_days(table) < dt.date(2023, 6, 10)
    ecrs = prices(table, "ECRS")
    assert before.any() and np.isnan(ecrs[before]).all()
    assert np.isnan(ecrs[~before]).mean() < 0.01


def test_ancillary_prices_positive_regdn_lowest_spiking_with_scarcity(demo):
    data_dir, _ = demo
    table = read(data_dir, "AS_prices", 2021)
    medians = {p: np.nanmedian(prices(table, p)) for p in table.column_names[1:]}
    assert all(np.nanmin(prices(table, p)) > 0 for p in medians)
    assert medians["REGDN"] == min(medians.values())
    uri = market_days(table) == dt.date(2021, 2, 16)
    assert np.nanmean(prices(table, "RRS")[uri]) > 20 * medians["RRS"]


def test_daily_seasonal_and_weekly_shape(demo):
    data_dir, _ = demo
    table = read(data_dir, "DA_prices", 2019)
    north = prices(table, "HB_NORTH")
    local = local_times(table)
    hour = np.array([t.hour for t in local])
    month = np.array([t.month for t in local])
    weekend = np.array([t.weekday() >= 5 for t in local])
    by_hour = [np.nanmedian(north[hour == h]) for h in range(24)]
    assert 16 <= int(np.argmax(by_hour)) <= 20
    assert by_hour[4] < 0.8 * by_hour[18]
    assert np.nanmedian(north[(month == 8) & (hour == 17)]) > 1.5 * np.nanmedian(north[(month == 4) & (hour == 17)])
    assert np.nanmedian(north[weekend]) < np.nanmedian(north[~weekend])
    west, houston = prices(table, "HB_WEST"), prices(table, "HB_HOUSTON")
    assert np.nanmedian(west[hour < 6]) < np.nanmedian(north[hour < 6]) < np.nanmedian(houston[hour < 6])


def test_default_range_writes_six_years(tmp_path):
    summary = write_demo_data(tmp_path)
    assert summary["years"] == list(range(2019, 2025))
    assert len(summary["files"]) == 3 * 6 + 1
    for year in range(2019, 2025):
        assert summary["rows"]["DA_prices"][year] == hours_in_year(year)
        assert summary["rows"]["RT_prices_15min"][year] == 4 * hours_in_year(year)
        ancillary = read(tmp_path, "AS_prices", year)
        assert ("ECRS" in ancillary.column_names) == (year >= 2023)
        real_time = read(tmp_path, "RT_prices_15min", year)
        assert max(pc.max(real_time[c]).as_py() for c in SETTLEMENT_POINTS) == offer_cap(year)
