"""Loading the reference layout: real data, the older pipeline's defects, precedence."""
import datetime as dt
import logging
import random
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from ercot_fast.errors import DataLoadError
from ercot_fast.store.load import load_store
from reference_layout import CENTRAL, DA_CSV, RT_CSV, ms, read_da_csv, read_rt_csv, utc_ms

UTC = dt.timezone.utc


def value_at(dataset, point, instant_ms):
    i = int(np.searchsorted(dataset.timestamps, instant_ms))
    assert dataset.timestamps[i] == instant_ms, "instant missing"
    return dataset.columns[point][i].as_py()


def series_dict(dataset, point):
    return dict(zip(dataset.timestamps.tolist(), dataset.columns[point].to_pylist()))


# --- the real data, DST-correct flavour -------------------------------------------------


def test_day_ahead_holds_every_csv_price(utc_store):
    expected = {}
    for year in DA_CSV:
        expected.update(read_da_csv(DA_CSV[year]))
    dataset = utc_store.datasets["day_ahead"]
    assert len(dataset) == len({t for t, _ in expected})
    for point in {p for _, p in expected}:
        got = series_dict(dataset, point)
        want = {ms(t): price for (t, p), price in expected.items() if p == point}
        assert {t: v for t, v in got.items() if v is not None} == want, point


def test_real_time_15min_holds_every_csv_price(utc_store):
    expected = {}
    for year in RT_CSV:
        expected.update(read_rt_csv(RT_CSV[year]))
    dataset = utc_store.datasets["real_time_15min"]
    assert len(dataset) == len({t for t, _ in expected})
    got = series_dict(dataset, "HB_NORTH")
    assert got == {ms(t): price for (t, p), price in expected.items() if p == "HB_NORTH"}


def test_fall_back_hour_is_two_instants(utc_store):
    dataset = utc_store.datasets["day_ahead"]
    # HE02 on 2020-11-01: 01:00 CDT = 06:00Z (DSTFlag N), 01:00 CST = 07:00Z (DSTFlag Y)
    assert value_at(dataset, "HB_NORTH", utc_ms(2020, 11, 1, 6)) == 21.26
    assert value_at(dataset, "HB_NORTH", utc_ms(2020, 11, 1, 7)) == 21.08


def test_timestamps_sorted_unique(utc_store):
    for dataset in utc_store.datasets.values():
        assert np.all(np.diff(dataset.timestamps) > 0), dataset.name


def test_real_time_hourly_is_mean_of_intervals(utc_store):
    quarter = read_rt_csv(RT_CSV[2021])
    hourly = utc_store.datasets["real_time"]
    day_start = dt.datetime(2021, 2, 17, tzinfo=CENTRAL).astimezone(UTC)
    for hour in range(24):
        start = day_start + dt.timedelta(hours=hour)
        intervals = [quarter[start + dt.timedelta(minutes=15 * k), "HB_NORTH"] for k in range(4)]
        assert value_at(hourly, "HB_NORTH", ms(start)) == pytest.approx(sum(intervals) / 4, abs=1e-9)


def test_settlement_points_in_family_order(utc_store):
    points = utc_store.settlement_points
    assert points[:7] == ("HB_BUSAVG", "HB_HOUSTON", "HB_HUBAVG", "HB_NORTH", "HB_PAN", "HB_SOUTH", "HB_WEST")
    assert points[7:] == tuple(sorted(p for p in points if p.startswith("LZ_")))
    assert not utc_store.synthetic


# --- the older pipeline's files ---------------------------------------------------------


def test_legacy_naive_central_time_is_converted(legacy_dir, utc_store):
    legacy = load_store(legacy_dir).datasets["day_ahead"]
    correct = utc_store.datasets["day_ahead"]
    # the collapsed fall-back hour keeps its one (first, CDT) row; all else is identical
    missing = sorted(set(correct.timestamps.tolist()) - set(legacy.timestamps.tolist()))
    assert missing == [utc_ms(2019, 11, 3, 7), utc_ms(2020, 11, 1, 7)]
    assert value_at(legacy, "HB_NORTH", utc_ms(2020, 11, 1, 6)) == 21.26
    # Winter Storm Uri day-ahead HB_NORTH, 2021-02-17 Central: 06:00Z .. next 05:00Z
    lo = np.searchsorted(legacy.timestamps, utc_ms(2021, 2, 17, 6))
    uri = legacy.columns["HB_NORTH"].slice(lo, 24).to_numpy()
    assert float(uri.sum()) / 24 == pytest.approx(8833.655, abs=1e-6)  # README: 8,833.66
    assert uri.max() == 8998.99


def test_legacy_collapsed_hour_is_reported(legacy_dir, caplog):
    with caplog.at_level(logging.WARNING):
        load_store(legacy_dir)
    assert "day_ahead: 2 market days with fewer intervals than the clock has (first 2019-11-03)" in caplog.text


# --- generated fixtures with the reference files' defects ------------------------------


def write(path, columns, metadata=None):
    path.parent.mkdir(parents=True, exist_ok=True)
    table = pa.table(columns)
    if metadata:
        table = table.replace_schema_metadata(metadata)
    pq.write_table(table, path)


def naive(*moments):
    return pa.array([dt.datetime(*m) for m in moments], type=pa.timestamp("ns"))


def quarter_hours(day, count):
    """``count`` naive 15-minute interval starts from local midnight of ``day``."""
    start = dt.datetime(*day)
    return pa.array([start + dt.timedelta(minutes=15 * k) for k in range(count)], type=pa.timestamp("us"))


def test_92_interval_days_load_and_are_reported(tmp_path, caplog):
    times = quarter_hours((2022, 6, 1), 92)  # 23:00-23:45 missing, as upstream
    write(tmp_path / "flattened/RT_prices_15min_2022.parquet", {"datetime_ts": times, "HB_NORTH": np.arange(92.0)})
    with caplog.at_level(logging.WARNING):
        store = load_store(tmp_path)
    assert len(store.datasets["real_time_15min"]) == 92
    assert len(store.datasets["real_time"]) == 23  # hourly means of the hours present
    assert value_at(store.datasets["real_time"], "HB_NORTH", utc_ms(2022, 6, 1, 5)) == 1.5  # mean of 0..3
    assert "real_time_15min: 1 market days with fewer intervals" in caplog.text


def test_hourly_means_of_cents_are_exact(tmp_path):
    prices = [12.93, 12.94, 12.93, 12.94, 0.1, 0.2, None, 0.3]  # float sums give 12.934999999999999
    write(tmp_path / "flattened/RT_prices_15min_2022.parquet", {"datetime_ts": quarter_hours((2022, 6, 1), 8), "HB_NORTH": prices})
    means = load_store(tmp_path).datasets["real_time"].columns["HB_NORTH"].to_pylist()
    assert means == [12.935, 0.2]
    assert repr(means[0]) == "12.935"


def test_duplicate_and_unsorted_rows(tmp_path, caplog):
    times = naive((2022, 1, 1, 2), (2022, 1, 1, 0), (2022, 1, 1, 1), (2022, 1, 1, 0))
    write(tmp_path / "flattened/DA_prices_2022.parquet", {"datetime_ts": times, "HB_NORTH": [3.0, 1.0, 2.0, 1.5]})
    with caplog.at_level(logging.INFO):
        store = load_store(tmp_path)
    dataset = store.datasets["day_ahead"]
    assert dataset.timestamps.tolist() == [utc_ms(2022, 1, 1, 6), utc_ms(2022, 1, 1, 7), utc_ms(2022, 1, 1, 8)]
    assert dataset.columns["HB_NORTH"].to_pylist() == [1.5, 2.0, 3.0]  # the later duplicate row wins
    assert "1 duplicate instants" in caplog.text
    assert "not in time order" in caplog.text


def test_stray_years_lose_to_their_own_year_file(tmp_path, caplog):
    # DA_prices_2023 holds a stray 2022 row with a wrong value; DA_prices_2022 has the right one
    write(tmp_path / "flattened/DA_prices_2022.parquet", {"datetime_ts": naive((2022, 12, 31, 23)), "HB_NORTH": [10.0]})
    write(
        tmp_path / "flattened/DA_prices_2023.parquet",
        {"datetime_ts": naive((2022, 12, 31, 23), (2023, 1, 1, 0)), "HB_NORTH": [99.0, 20.0]},
    )
    with caplog.at_level(logging.WARNING):
        store = load_store(tmp_path)
    assert store.datasets["day_ahead"].columns["HB_NORTH"].to_pylist() == [10.0, 20.0]
    assert "DA_prices_2023.parquet: 1 rows outside 2023" in caplog.text


def test_extra_columns_are_ignored_or_served(tmp_path):
    times = naive((2022, 7, 1, 0), (2022, 7, 1, 1))
    write(
        tmp_path / "flattened/DA_prices_2022.parquet",
        {
            "datetime_ts": times,
            "DeliveryDate": pa.array([dt.date(2022, 7, 1)] * 2),
            "DeliveryDateStr": ["2022-07-01-06:00"] * 2,
            "DeliveryInterval": pa.array([1, 2], type=pa.int64()),
            "__index_level_0__": pa.array([0, 1], type=pa.int64()),
            "HB_NORTH": [1.0, None],
            "RN_SOME_NODE": [5.0, 6.0],  # a resource node: served, never hard-coded away
        },
    )
    store = load_store(tmp_path)
    dataset = store.datasets["day_ahead"]
    assert sorted(dataset.columns) == ["HB_NORTH", "RN_SOME_NODE"]
    assert dataset.columns["HB_NORTH"].to_pylist() == [1.0, None]
    assert store.settlement_points == ("HB_NORTH", "RN_SOME_NODE")


def test_corrupt_and_unknown_files_are_survived(tmp_path, caplog):
    write(tmp_path / "flattened/DA_prices_2022.parquet", {"datetime_ts": naive((2022, 7, 1, 0)), "HB_NORTH": [1.0]})
    (tmp_path / "flattened/DA_prices_2021.parquet").write_bytes(b"PAR1 this is not parquet")
    write(tmp_path / "flattened/AS_prices_2022.parquet", {"when": naive((2022, 7, 1, 0)), "RRS": [1.0]})
    (tmp_path / "notes.txt").write_text("hello")
    with caplog.at_level(logging.INFO):
        store = load_store(tmp_path)
    assert store.files_loaded == 1
    assert store.datasets["day_ahead"].columns["HB_NORTH"].to_pylist() == [1.0]
    assert "skipped unreadable file flattened/DA_prices_2021.parquet" in caplog.text
    assert "skipped unreadable file flattened/AS_prices_2022.parquet: no time column" in caplog.text
    assert "ignored unknown file notes.txt" in caplog.text


def test_combined_files_and_precedence(tmp_path):
    hours = naive((2022, 3, 1, 0), (2022, 3, 1, 1))
    write(tmp_path / "flattened/DA_prices_2022.parquet", {"datetime_ts": naive((2022, 3, 1, 0)), "HB_NORTH": [1.0]})
    write(
        tmp_path / "combined/DA_AS_RT_combined_2022.parquet",
        {
            "datetime": hours,
            "DA_HB_NORTH": [50.0, 2.0],  # the flattened file wins at 00:00, this fills 01:00
            "DA_DeliveryDate": pa.array([dt.date(2022, 3, 1)] * 2),
            "DA_datetime_ts": hours,
            "AS_RRS": [7.0, 8.0],
            "RT_HB_NORTH": [30.0, None],
        },
    )
    write(
        tmp_path / "combined/monthly/DA_AS_RT_combined/DA_AS_RT_combined_2022_03.parquet",
        {"datetime": hours, "DA_HB_NORTH": [60.0, 60.0], "RT_HB_NORTH": [40.0, 41.0]},
    )
    write(
        tmp_path / "flattened/RT_prices_15min_2022.parquet",
        {"datetime_ts": quarter_hours((2022, 3, 1), 8), "HB_NORTH": [100.0] * 8},
    )
    store = load_store(tmp_path)
    assert store.datasets["day_ahead"].columns["HB_NORTH"].to_pylist() == [1.0, 2.0]
    assert store.datasets["ancillary_services"].columns["RRS"].to_pylist() == [7.0, 8.0]
    # hourly RT: the annual combined file, the monthly where it is null; 15-minute means never override
    assert store.datasets["real_time"].columns["HB_NORTH"].to_pylist() == [30.0, 41.0]
    assert sorted(store.datasets["day_ahead"].columns) == ["HB_NORTH"]


def test_hourly_file_beats_computed_means(tmp_path):
    write(
        tmp_path / "flattened/RT_prices_15min_2022.parquet",
        {"datetime_ts": quarter_hours((2022, 3, 1), 8), "HB_NORTH": [1.0, 2.0, 3.0, 4.0, 5.0, 6.0, None, None]},
    )
    write(tmp_path / "flattened/RT_prices_hourly_2022.parquet", {"datetime_ts": naive((2022, 3, 1, 0)), "HB_NORTH": [9.0]})
    store = load_store(tmp_path)
    assert store.datasets["real_time"].columns["HB_NORTH"].to_pylist() == [9.0, 5.5]


def test_result_does_not_depend_on_listing_order(tmp_path, monkeypatch):
    for month, value in ((1, 1.0), (2, 2.0)):
        write(
            tmp_path / f"combined/monthly/DA_AS_RT_combined/DA_AS_RT_combined_2022_{month:02d}.parquet",
            {"datetime": naive((2022, 1, 31, 23), (2022, 2, 1, 0)), "DA_HB_NORTH": [value, value]},
        )
    expected = load_store(tmp_path).datasets["day_ahead"].columns["HB_NORTH"].to_pylist()
    assert expected == [1.0, 2.0]  # each instant from the file whose month it is in
    original = Path.rglob

    def shuffled(self, pattern):
        paths = list(original(self, pattern))
        random.Random(3).shuffle(paths)
        return iter(paths[::-1])

    monkeypatch.setattr(Path, "rglob", shuffled)
    assert load_store(tmp_path).datasets["day_ahead"].columns["HB_NORTH"].to_pylist() == expected


def test_spring_forward_gap_rows_are_dropped(tmp_path, caplog):
    times = naive((2022, 3, 13, 1), (2022, 3, 13, 2), (2022, 3, 13, 3))  # 02:00 does not exist
    write(tmp_path / "flattened/DA_prices_2022.parquet", {"datetime_ts": times, "HB_NORTH": [1.0, 2.0, 3.0]})
    with caplog.at_level(logging.WARNING):
        store = load_store(tmp_path)
    assert store.datasets["day_ahead"].timestamps.tolist() == [utc_ms(2022, 3, 13, 7), utc_ms(2022, 3, 13, 8)]
    assert "1 rows at Central times that do not exist" in caplog.text


def test_aware_time_column_is_taken_as_instants(tmp_path):
    instants = pa.array([dt.datetime(2022, 11, 6, 6), dt.datetime(2022, 11, 6, 7)], type=pa.timestamp("ms", tz="UTC"))
    write(
        tmp_path / "flattened/DA_prices_2022.parquet",
        {"datetime_ts": instants, "HB_NORTH": [1.0, 2.0]},
        metadata={b"ercot_fast.synthetic": b"true"},
    )
    store = load_store(tmp_path)
    assert store.datasets["day_ahead"].timestamps.tolist() == [utc_ms(2022, 11, 6, 6), utc_ms(2022, 11, 6, 7)]
    assert store.synthetic


def test_missing_directory_is_a_clear_error(tmp_path):
    with pytest.raises(DataLoadError, match="does not exist"):
        load_store(tmp_path / "nope")


def test_empty_directory_loads_nothing(tmp_path):
    store = load_store(tmp_path)
    assert store.total_rows == 0 and store.settlement_points == ()


def test_a_store_of_many_series_holds_every_price_of_its_files(tmp_path):
    """Enough settlement points that the merge and the hourly means run on
    every CPU (store.load._PARALLEL_FROM): two year files, nulls and a NaN in
    the files, an hourly file overlapping the means, all as in the files."""
    rng = np.random.default_rng(7)
    points = [f"RN_{k:03d}" for k in range(80)]
    expected = {}
    for year in (2021, 2022):
        prices = {p: np.round(rng.normal(30, 10, 8), 2) for p in points}
        prices["RN_001"][2] = np.nan  # a NaN is missing, as a null is
        columns = {"datetime_ts": quarter_hours((year, 6, 1), 8)}
        columns.update({p: pa.array(v, mask=np.arange(8) == (k % 8) if k < 8 else None, from_pandas=True)
                        for k, (p, v) in enumerate(prices.items())})
        write(tmp_path / f"flattened/RT_prices_15min_{year}.parquet", columns)
        expected[year] = {p: [None if v != v else v for v in columns[p].to_pylist()] for p in points}  # NaN: missing
    write(tmp_path / "flattened/RT_prices_hourly_2022.parquet",
          {"datetime_ts": naive((2022, 6, 1, 0)), "RN_005": [99.0]})
    store = load_store(tmp_path)
    quarter_hourly, hourly = store.datasets["real_time_15min"], store.datasets["real_time"]
    assert len(quarter_hourly) == 16 and len(hourly) == 4
    for point in points:
        assert quarter_hourly.columns[point].to_pylist() == expected[2021][point] + expected[2022][point]
    assert quarter_hourly.columns["RN_001"].null_count == 4  # a null and a NaN a year
    first_hour = [v for v in expected[2021]["RN_042"][:4] if v is not None]
    assert hourly.columns["RN_042"][0].as_py() == pytest.approx(sum(first_hour) / len(first_hour), rel=1e-15)
    assert hourly.columns["RN_005"].to_pylist()[2] == 99.0  # the hourly file, before the means
