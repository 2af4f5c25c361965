"""`ercot-fast ingest`: ERCOT's own report files into the served store.

The oracle for the real data is tests/reference_layout.py (csv module and
zoneinfo, row by row); generated reports compute their rows from UTC instants
towards Central wall-clock time, the opposite direction of the code under test.
"""
import csv
import datetime as dt
import io
import json
import logging
import os
import random
import shutil
import signal
import subprocess
import sys
import textwrap
import time
import zipfile
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest

from ercot_fast import timeutil
from ercot_fast.cli import build_parser
from ercot_fast.datadir import open_data_dir
from ercot_fast.errors import IngestError
from ercot_fast.ingest import formats, ingest, layout, validation
from ercot_fast.store.load import load_store
from reference_layout import CENTRAL, DA_CSV, RT_CSV, SHARED_DATA, interval_start, ms, read_da_csv, read_rt_csv, utc_ms
from serving import ERCOT_FAST, Served, fetch, free_port

UTC = dt.timezone.utc
RAW = SHARED_DATA / "raw_ercot_reports"
DA_MONTHLY = SHARED_DATA / "np4_190_cd" / "monthly"
DA_HEADER = "DeliveryDate,HourEnding,SettlementPoint,SettlementPointPrice,DSTFlag\n"
RT_HEADER = (
    "DeliveryDate,DeliveryHour,DeliveryInterval,SettlementPointName,SettlementPointType,SettlementPointPrice,DSTFlag\n"
)
AS_HEADER = "DeliveryDate,HourEnding,AncillaryType,MCPC,DSTFlag\n"


def stored(data_dir, dataset):
    """{(utc ms, series): price} of every non-null value in a data set's partitions."""
    values = {}
    for name in layout.partitions(open_data_dir(data_dir), dataset):
        table = pq.read_table(Path(data_dir) / name)
        times = table.column("datetime_ts").cast("int64").to_pylist()
        for name in table.column_names[1:]:
            for t, v in zip(times, table.column(name).to_pylist()):
                if v is not None:
                    values[t, name] = v
    return values


def snapshot(data_dir):
    """Every file's bytes and modification time."""
    return {
        p.relative_to(data_dir).as_posix(): (p.read_bytes(), p.stat().st_mtime_ns)
        for p in sorted(Path(data_dir).rglob("*"))
        if p.is_file()
    }


def tables(data_dir):
    return {
        p.relative_to(data_dir).as_posix(): pq.read_table(p)
        for p in sorted(Path(data_dir).rglob("*.parquet"))
    }


def day_counts(timestamps):
    """Central market day -> number of intervals."""
    days = timeutil.central_wallclock(np.asarray(timestamps)) // timeutil.MS_PER_DAY
    found, counts = np.unique(days, return_counts=True)
    return {dt.date(1970, 1, 1) + dt.timedelta(days=int(d)): int(c) for d, c in zip(found, counts)}


def without_energy_weighted(path, folder):
    """A copy of an NP6-905-CD CSV without its LZEW rows (the oracle's input)."""
    target = Path(folder) / f"lz_only_{path.name}"
    if not target.exists():
        with open(path) as src, open(target, "w") as dst:
            for line in src:
                if line.split(",")[4] != "LZEW":
                    dst.write(line)
    return target


def read_raw(path):
    """The raw NP4-180-ER / NP6-785-ER extracts: spaced headers, Repeated Hour
    Flag, quoted thousands separators; LZEW rows left out."""
    prices = {}
    with open(path, newline="") as f:
        for row in csv.DictReader(f):
            if row.get("Settlement Point Type") == "LZEW":
                continue
            if "Hour Ending" in row:
                hour, interval, point = int(row["Hour Ending"].split(":")[0]), 1, row["Settlement Point"]
            else:
                hour, interval = int(row["Delivery Hour"]), int(row["Delivery Interval"])
                point = row["Settlement Point Name"]
            start = interval_start(row["Delivery Date"], hour, interval, row["Repeated Hour Flag"] == "Y")
            prices[start, point] = float(row["Settlement Point Price"].replace(",", ""))
    return prices


def as_ms(prices):
    return {(ms(t), p): v for (t, p), v in prices.items()}


def intervals_of(day, minutes):
    """(utc instant, delivery date, hour ending, interval, DSTFlag) of each
    interval of a Central market day, worked out from the UTC side."""
    start = dt.datetime.combine(day, dt.time(), CENTRAL).astimezone(UTC)
    end = dt.datetime.combine(day + dt.timedelta(days=1), dt.time(), CENTRAL).astimezone(UTC)
    found = []
    while start < end:
        local = start.astimezone(CENTRAL)
        flag = "Y" if local.fold else "N"
        found.append((start, local.strftime("%m/%d/%Y"), local.hour + 1, local.minute // minutes + 1, flag))
        start += dt.timedelta(minutes=minutes)
    return found


def fake_price(instant, salt):
    return round(10 + (ms(instant) // 900_000 % 997) * 0.37 + salt, 2)


def zip_bytes(members):
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, text in members.items():
            archive.writestr(name, text)
    return buf.getvalue()


def write_rt_interval_zips(folder, days, points=("HB_NORTH", "LZ_WEST")):
    """One ZIP per 15-minute interval, as ERCOT ships NP6-905-CD (with an LZEW
    row per load zone). Returns the oracle {(utc ms, point): price}."""
    folder.mkdir(parents=True, exist_ok=True)
    oracle = {}
    for day in days:
        for instant, date, hour, interval, flag in intervals_of(day, 15):
            rows = [RT_HEADER]
            for salt, point in enumerate(points):
                price = fake_price(instant, salt)
                oracle[ms(instant), point] = price
                kind = "LZ" if point.startswith("LZ_") else "HU"
                rows.append(f"{date},{hour},{interval},{point},{kind},{price},{flag}\n")
                if kind == "LZ":
                    rows.append(f"{date},{hour},{interval},{point},LZEW,{price + 0.01:.2f},{flag}\n")
            stamp = instant.strftime("%Y%m%d%H%M")
            (folder / f"spp_{stamp}.zip").write_bytes(zip_bytes({f"spp_{stamp}.csv": "".join(rows)}))
    return oracle


def lines_of_days(path, dates):
    """Header and the rows of ``dates`` (MM/DD/YYYY) of a report CSV."""
    with open(path) as f:
        header = f.readline()
        return header + "".join(line for line in f if line[:10] in dates)


# --- the real data, ingested once ----------------------------------------------------------


@pytest.fixture(scope="module")
def real(real_data, tmp_path_factory):
    """All of np4_190_cd/ (yearly and monthly), np6_905_cd/ and raw_ercot_reports/."""
    data_dir = tmp_path_factory.mktemp("ingested")
    report = ingest([SHARED_DATA / "np4_190_cd", SHARED_DATA / "np6_905_cd", RAW], data_dir)
    return data_dir, report


@pytest.fixture(scope="module")
def real_store(real):
    return load_store(real[0])


@pytest.fixture(scope="module")
def lz_only(real_data, tmp_path_factory):
    folder = tmp_path_factory.mktemp("lz_only")
    return {year: without_energy_weighted(path, folder) for year, path in RT_CSV.items()}


def test_real_day_ahead_ingests_without_loss(real):
    data_dir, report = real
    expected = {}
    for year in DA_CSV:
        expected.update(as_ms(read_da_csv(DA_CSV[year])))
    for month in sorted(DA_MONTHLY.glob("*.csv")):
        monthly = as_ms(read_da_csv(month))
        assert all(expected[key] == price for key, price in monthly.items()), month
    for name in ("DAM-2019-02.csv", "DAM-2020-02.csv", "DAM-2021-02.csv"):
        raw = as_ms(read_raw(RAW / name))
        assert raw and all(expected[key] == price for key, price in raw.items()), name
    assert stored(data_dir, "day_ahead") == expected  # every price, nothing else
    day_ahead = report.to_json()["datasets"]["day_ahead"]
    assert day_ahead["rows_rejected"]["count"] == 0
    assert day_ahead["duplicate_intervals"]["conflicting"] == 0
    assert day_ahead["reports"] == {"NP4-180-ER": 3, "NP4-190-CD": 34}
    assert day_ahead["values"]["added"] == len(expected)


def test_real_real_time_ingests_without_loss_keeping_lz_rows(real, lz_only):
    data_dir, report = real
    expected = {}
    for year in RT_CSV:
        expected.update(as_ms(read_rt_csv(lz_only[year])))
    for name in ("RTM-2019-02.csv", "RTM-2020-02.csv", "RTM-2021-02.csv"):
        raw = as_ms(read_raw(RAW / name))  # quoted thousands separators, spaced header
        instants = {t for t, _ in raw}
        assert raw == {k: v for k, v in expected.items() if k[0] in instants}, name
    assert stored(data_dir, "real_time_15min") == expected
    real_time = report.to_json()["datasets"]["real_time_15min"]
    assert real_time["reports"] == {"NP6-785-ER": 3, "NP6-905-CD": 3}
    # 8 load zones x 4 intervals x 24 hours x (28 + 29 + 28) days, in two copies
    assert real_time["rows_skipped"] == {formats.ENERGY_WEIGHTED: 2 * 8 * 96 * 85}
    assert real_time["rows_rejected"]["count"] == 0 and real_time["duplicate_intervals"]["conflicting"] == 0


def test_real_other_files_are_reported_not_fatal(real):
    _, report = real
    skipped = {Path(item["file"]).name for item in report.to_json()["unrecognised_files"]}
    assert skipped == {"Hub_Name_AND_DC_Ties_07172021_144918.csv", "LICENSE", "ORIGIN.md"}
    assert report.to_json()["unreadable_files"] == []


def test_real_hours_per_market_day(real_store):
    counts = day_counts(real_store.datasets["day_ahead"].timestamps)
    assert min(counts) == dt.date(2019, 1, 1) and max(counts) == dt.date(2021, 7, 24)
    assert len(counts) == (dt.date(2021, 7, 24) - dt.date(2019, 1, 1)).days + 1
    short = {day for day, n in counts.items() if n == 23}
    long = {day for day, n in counts.items() if n == 25}
    assert short == {dt.date(2019, 3, 10), dt.date(2020, 3, 8), dt.date(2021, 3, 14)}
    assert long == {dt.date(2019, 11, 3), dt.date(2020, 11, 1)}
    assert set(counts.values()) == {23, 24, 25}
    rt_counts = day_counts(real_store.datasets["real_time_15min"].timestamps)
    assert len(rt_counts) == 28 + 29 + 28 and set(rt_counts.values()) == {96}


def test_real_partitions_hold_their_month_sorted_unique_utc(real):
    data_dir, _ = real
    files = [Path(data_dir) / name for name in layout.partitions(open_data_dir(data_dir), "day_ahead")]
    assert [f.name for f in files[:2]] == ["day_ahead_2019_01.parquet", "day_ahead_2019_02.parquet"]
    assert len(files) == 31
    for path in files + [Path(data_dir) / name for name in layout.partitions(open_data_dir(data_dir), "real_time_15min")]:
        table = pq.read_table(path)
        assert str(table.schema.field("datetime_ts").type) == "timestamp[ms, tz=UTC]"
        times = table.column("datetime_ts").cast("int64").to_numpy()
        assert np.all(np.diff(times) > 0)
        months = {(d.year, d.month) for d in day_counts(times)}
        year, month = (int(x) for x in path.stem.split("_")[-2:])
        assert months == {(year, month)}, path


def test_real_both_prices_of_the_repeated_hour(real_store):
    dataset = real_store.datasets["day_ahead"]
    first = int(np.searchsorted(dataset.timestamps, utc_ms(2020, 11, 1, 6)))  # HE02, CDT
    assert dataset.timestamps[first : first + 2].tolist() == [utc_ms(2020, 11, 1, 6), utc_ms(2020, 11, 1, 7)]
    assert dataset.columns["HB_NORTH"][first : first + 2].to_pylist() == [21.26, 21.08]


def test_real_winter_storm_uri(real_store):
    day_ahead = real_store.datasets["day_ahead"]
    start, end = np.searchsorted(day_ahead.timestamps, [utc_ms(2021, 2, 17, 6), utc_ms(2021, 2, 18, 6)])
    north = day_ahead.columns["HB_NORTH"][start:end].to_numpy()
    # the README's 8,833.66 is 8,833.655 rounded half up
    assert len(north) == 24 and north.mean() == pytest.approx(8833.655, abs=1e-6) and north.max() == 8998.99
    real_time = real_store.datasets["real_time_15min"]
    start, end = np.searchsorted(real_time.timestamps, [utc_ms(2021, 2, 17, 6), utc_ms(2021, 2, 18, 6)])
    assert real_time.columns["HB_NORTH"][start:end].to_numpy().max() == 9315.45
    # 2021-02-19 HE10 (09:00-10:00 CST = 15:00Z): the end of the emergency pricing
    at = int(np.searchsorted(real_time.timestamps, utc_ms(2021, 2, 19, 14)))
    he09, he10 = real_time.columns["HB_NORTH"][at : at + 4], real_time.columns["HB_NORTH"][at + 4 : at + 8]
    assert min(he09.to_pylist()) > 8900 and he10.to_pylist()[:2] == [3210.81, 32.05]


def test_real_hb_pan_empty_before_2019_04_06(real_store, real):
    for name in ("day_ahead", "real_time_15min"):
        dataset = real_store.datasets[name]
        first_day = int(np.searchsorted(dataset.timestamps, ms(dt.datetime(2019, 4, 6, tzinfo=CENTRAL))))
        pan = dataset.columns["HB_PAN"]
        assert pan[:first_day].null_count == first_day > 0
    day_ahead = real_store.datasets["day_ahead"]
    april_6 = int(np.searchsorted(day_ahead.timestamps, ms(dt.datetime(2019, 4, 6, tzinfo=CENTRAL))))
    assert day_ahead.columns["HB_PAN"][april_6 : april_6 + 24].null_count == 0
    gap = real[1].to_json()["datasets"]["day_ahead"]["series_gaps"]["HB_PAN"]
    assert gap == {"missing": 95 * 24 - 1, "first": "2019-01-01T06:00:00Z", "last": "2019-04-06T04:00:00Z"}


def test_real_flags_prices_outside_plausible_bounds(real):
    outside = real[1].to_json()["datasets"]["real_time_15min"]["out_of_bounds"]
    low, high = validation.PLAUSIBLE["real_time_15min"]
    assert outside["count"] == len(outside["examples"]) > 0
    assert all(not low <= e["price"] <= high for e in outside["examples"])
    example = outside["examples"][0]
    with open(example["file"]) as f:
        line = f.readlines()[example["line"] - 1]
    assert example["series"] in line and f"{example['price']:.2f}".rstrip("0") in line.replace('"', "").replace(",", "")


# --- the same values from CSV, from ZIPs, in any order -----------------------------------------


@pytest.fixture(scope="module")
def zipped(real_data, tmp_path_factory):
    """DA 2020-10 and 2020-11 and RT 2020-02 as ERCOT ships them: DA one ZIP per
    day, RT one ZIP per day holding one CSV per interval, and November's days
    wrapped once more in a monthly ZIP (a ZIP of ZIPs)."""
    folder = tmp_path_factory.mktemp("zipped")
    csvs = [DA_MONTHLY / "dam_spp_hub_lz_2020-10.csv", DA_MONTHLY / "dam_spp_hub_lz_2020-11.csv", RT_CSV[2020]]
    daily_november = {}
    for path in csvs[:2]:
        with open(path) as f:
            header, rows = f.readline(), f.readlines()
        by_day = {}
        for row in rows:
            by_day.setdefault(row[:10], []).append(row)
        for day, day_rows in by_day.items():
            stamp = f"{day[6:]}{day[:2]}{day[3:5]}"
            data = zip_bytes({f"cdr.00012331.{stamp}.DAMSPNP4190.csv": header + "".join(day_rows)})
            if day.startswith("11/"):
                daily_november[f"DAMSPNP4190_{stamp}.zip"] = data
            else:
                (folder / f"DAMSPNP4190_{stamp}.zip").write_bytes(data)
    monthly = io.BytesIO()
    with zipfile.ZipFile(monthly, "w") as archive:
        for name, data in daily_november.items():
            archive.writestr(name, data)
    (folder / "DAMSPNP4190_202011.zip").write_bytes(monthly.getvalue())
    with open(RT_CSV[2020]) as f:
        header, rows = f.readline(), f.readlines()
    by_day = {}
    for row in rows:
        by_day.setdefault(row[:10], {}).setdefault(tuple(row.split(",")[1:3]), []).append(row)
    for day, intervals in by_day.items():
        stamp = f"{day[6:]}{day[:2]}{day[3:5]}"
        members = {f"SPPHLZNP6905_{stamp}_{i:03d}.csv": header + "".join(r) for i, r in enumerate(intervals.values())}
        (folder / f"SPPHLZNP6905_{stamp}.zip").write_bytes(zip_bytes(members))
    return csvs, folder


def test_same_values_from_csv_from_zips_and_in_any_order(zipped, tmp_path):
    csvs, folder = zipped
    from_csv, from_zips, shuffled = tmp_path / "csv", tmp_path / "zips", tmp_path / "shuffled"
    ingest(csvs, from_csv)
    report = ingest([folder], from_zips)
    zips = sorted(folder.iterdir())
    random.Random(7).shuffle(zips)
    ingest(zips, shuffled)
    reference = tables(from_csv)
    assert sorted(reference) == [
        "ercot_fast/day_ahead/day_ahead_2020_10.parquet",
        "ercot_fast/day_ahead/day_ahead_2020_11.parquet",
        "ercot_fast/real_time_15min/real_time_15min_2020_02.parquet",
    ]
    for other in (from_zips, shuffled):
        got = tables(other)
        assert sorted(got) == sorted(reference)
        for name, table in reference.items():
            assert got[name].equals(table), name
    # each interval came as its own CSV member: 2784 of them, plus 61 daily DA CSVs
    assert report.csv_streams == 29 * 96 + 31 + 30


@pytest.mark.usefixtures("real_data")
def test_conflicting_inputs_of_one_run_resolve_by_modification_time_then_path(tmp_path):
    original = lines_of_days(DA_MONTHLY / "dam_spp_hub_lz_2020-11.csv", {"11/01/2020"})
    corrected = original.replace("HB_NORTH,21.26,N", "HB_NORTH,99.99,N")
    older, newer = tmp_path / "b_first.csv", tmp_path / "a_corrected.csv"
    older.write_text(original)
    newer.write_text(corrected)
    os.utime(older, ns=(1_600_000_000_000_000_000,) * 2)
    os.utime(newer, ns=(1_700_000_000_000_000_000,) * 2)
    results = []
    for order in ([older, newer], [newer, older]):
        data_dir = tmp_path / f"run{len(results)}"
        report = ingest(order, data_dir)
        results.append(tables(data_dir))
        assert stored(data_dir, "day_ahead")[utc_ms(2020, 11, 1, 6), "HB_NORTH"] == 99.99
        duplicates = report.to_json()["datasets"]["day_ahead"]["duplicate_intervals"]
        assert duplicates["conflicting"] == 1 and duplicates["examples"][0]["kept"] == 99.99
    assert all(results[0][name].equals(results[1][name]) for name in results[0])
    # same modification time: the later path wins
    os.utime(older, ns=(1_700_000_000_000_000_000,) * 2)
    ingest([older, newer], tmp_path / "same_time")
    assert stored(tmp_path / "same_time", "day_ahead")[utc_ms(2020, 11, 1, 6), "HB_NORTH"] == 21.26  # b_first.csv


# --- incremental, idempotent, corrections -------------------------------------------------------


@pytest.mark.usefixtures("real_data")
def test_reingest_changes_nothing(tmp_path):
    inputs = [DA_MONTHLY / "dam_spp_hub_lz_2020-10.csv", DA_MONTHLY / "dam_spp_hub_lz_2020-11.csv", RT_CSV[2020]]
    ingest(inputs, tmp_path)
    before = snapshot(tmp_path)
    report = ingest(inputs, tmp_path).to_json()
    assert snapshot(tmp_path) == before  # not a byte, not a modification time
    for name in ("day_ahead", "real_time_15min"):
        values = report["datasets"][name]["values"]
        assert values["added"] == values["changed"] == 0 and values["unchanged"] > 0
        assert report["datasets"][name]["files_written"] == []


@pytest.mark.usefixtures("real_data")
def test_new_days_are_added_rewriting_only_their_month(tmp_path):
    november = DA_MONTHLY / "dam_spp_hub_lz_2020-11.csv"
    (tmp_path / "in").mkdir()
    october = DA_MONTHLY / "dam_spp_hub_lz_2020-10.csv"
    day1, day2 = tmp_path / "in" / "day1.csv", tmp_path / "in" / "day2.csv"
    day1.write_text(lines_of_days(november, {"11/01/2020"}))
    day2.write_text(lines_of_days(november, {"11/02/2020"}))
    data_dir = tmp_path / "data"
    ingest([october, day1], data_dir)
    october_file = data_dir / "ercot_fast/day_ahead/day_ahead_2020_10.parquet"
    before = october_file.stat().st_mtime_ns
    report = ingest([day2], data_dir).to_json()["datasets"]["day_ahead"]
    assert report["files_written"] == [str(data_dir / "ercot_fast/day_ahead/day_ahead_2020_11.parquet")]
    assert report["values"] == {"added": 24 * 15, "changed": 0, "unchanged": 0}
    assert october_file.stat().st_mtime_ns == before
    counts = day_counts(load_store(data_dir).datasets["day_ahead"].timestamps)
    assert counts[dt.date(2020, 11, 1)] == 25 and counts[dt.date(2020, 11, 2)] == 24 and len(counts) == 33


@pytest.mark.usefixtures("real_data")
def test_republished_day_replaces_values_and_the_log_says_so(tmp_path, caplog):
    november = DA_MONTHLY / "dam_spp_hub_lz_2020-11.csv"
    data_dir = tmp_path / "data"
    ingest([november], data_dir)
    before = stored(data_dir, "day_ahead")
    corrected = tmp_path / "corrected.csv"
    corrected.write_text(
        lines_of_days(november, {"11/01/2020"})
        .replace("HB_NORTH,21.08,Y", "HB_NORTH,21.18,Y")
        .replace("01:00,HB_WEST,", "01:00,HB_WEST,1")
        .replace("24:00,LZ_AEN,", "24:00,LZ_AEN,-")
    )
    with caplog.at_level(logging.INFO, logger="ercot_fast.ingest"):
        result = ingest([corrected], data_dir)
    report, summary = result.to_json()["datasets"]["day_ahead"], result.summary()
    assert "day_ahead 2020-11-01: 3 values replaced by re-published prices" in caplog.text
    assert report["corrections"] == [{"day": "2020-11-01", "values_changed": 3}]
    assert "re-published: 2020-11-01 (3)" in summary
    assert report["values"] == {"added": 0, "changed": 3, "unchanged": 25 * 15 - 3}
    after = stored(data_dir, "day_ahead")
    changed = {key for key in before if before[key] != after[key]}
    assert after[utc_ms(2020, 11, 1, 7), "HB_NORTH"] == 21.18
    assert len(changed) == 3 and set(after) == set(before)


# --- time: DST days in real-time and ancillary services, generated ------------------------------


def test_real_time_dst_days_have_92_and_100_intervals_from_interval_zips(tmp_path):
    days = [dt.date(2021, 3, 13), dt.date(2021, 3, 14), dt.date(2021, 11, 7)]
    oracle = write_rt_interval_zips(tmp_path / "zips", days)
    assert len(list((tmp_path / "zips").iterdir())) == 96 + 92 + 100
    report = ingest([tmp_path / "zips"], tmp_path / "data").to_json()["datasets"]["real_time_15min"]
    assert stored(tmp_path / "data", "real_time_15min") == oracle
    assert report["rows_skipped"] == {formats.ENERGY_WEIGHTED: 96 + 92 + 100}
    assert report["missing_intervals"]["count"] == 0
    counts = day_counts(load_store(tmp_path / "data").datasets["real_time_15min"].timestamps)
    assert counts == dict(zip(days, (96, 92, 100)))
    fall_back = [t for t, p in oracle if p == "HB_NORTH" and utc_ms(2021, 11, 7, 6) <= t < utc_ms(2021, 11, 7, 8)]
    assert len(fall_back) == 8  # 01:00-02:00 CDT and 01:00-02:00 CST, 4 intervals each


def test_ancillary_services_with_ecrs_and_the_repeated_hour(tmp_path):
    rows, oracle = [AS_HEADER], {}
    products = ("ECRS", "NSPIN", "REGDN", "REGUP", "RRS")
    for day in (dt.date(2023, 11, 5), dt.date(2023, 11, 6)):
        for instant, date, hour, _, flag in intervals_of(day, 60):
            for salt, product in enumerate(products):
                oracle[ms(instant), product] = fake_price(instant, salt)
                rows.append(f"{date},{hour:02d}:00,{product},{oracle[ms(instant), product]},{flag}\n")
    (tmp_path / "as.csv").write_text("".join(rows))
    report = ingest([tmp_path / "as.csv"], tmp_path / "data").to_json()["datasets"]["ancillary_services"]
    assert report["reports"] == {"NP4-188-CD": 1}
    assert stored(tmp_path / "data", "ancillary_services") == oracle
    store = load_store(tmp_path / "data")
    assert sorted(store.datasets["ancillary_services"].columns) == list(products)
    assert day_counts(store.datasets["ancillary_services"].timestamps) == {
        dt.date(2023, 11, 5): 25,
        dt.date(2023, 11, 6): 24,
    }


def test_hour_starts_agree_with_zoneinfo_on_every_day_of_a_decade():
    for day_number in range(
        (dt.date(2016, 1, 1) - dt.date(1970, 1, 1)).days, (dt.date(2026, 1, 1) - dt.date(1970, 1, 1)).days
    ):
        day = dt.date(1970, 1, 1) + dt.timedelta(days=day_number)
        starts = formats._hour_starts(day_number)
        expected = {(hour, flag == "Y"): ms(t) for t, _, hour, _, flag in intervals_of(day, 60)}
        got = {(h, bool(f)): int(starts[h, f]) for h in range(1, 25) for f in (0, 1) if starts[h, f] > 0}
        assert got == expected, day


# --- bad input ---------------------------------------------------------------------------------------

BAD_ROWS = [
    ("03/08/2020,01:00,HB_NORTH,20.00,N", None),  # line 2
    ("03/08/2020,02:00,HB_NORTH, 21.50,N", None),  # padded price
    ("03/08/2020,03:00,HB_NORTH,22.00,N", formats.NO_SUCH_HOUR),  # 2020-03-08 springs forward
    ('03/08/2020,04:00,HB_NORTH,"1,234.50",N', None),
    ("13/45/2020,05:00,HB_NORTH,20.00,N", formats.BAD_DATE),
    ("03/08/2020,25:00,HB_NORTH,20.00,N", formats.BAD_HOUR),
    ("03/08/2020,06:00,HB_NORTH,abc,N", formats.BAD_PRICE),
    ("03/08/2020,07:00,HB_NORTH,,N", formats.NO_PRICE),
    ("03/08/2020,08:00,HB_NORTH,20.00", formats.MALFORMED),
    ("", None),  # a blank line
    ("03/08/2020,09:00,HB_NORTH,20.00,N,extra", formats.MALFORMED),
    ("03/08/2020,10:00,HB_NORTH,20.00,Y", formats.NOT_REPEATED),
    ("03/08/2020,11:00,HB_NORTH,20.00,X", formats.BAD_FLAG),
    ("03/08/2020,12:00,,20.00,N", formats.NO_SERIES),
    ("03/08/2020,13:00,HB_NORTH,nan,N", formats.BAD_PRICE),
    ('03/08/2020,14:00,HB_NORTH,"1,2,3",N', formats.BAD_PRICE),
    ("03/08/2020,15:00,HB_NORTH,-1.5e1,N", None),
]
BAD_FILE = DA_HEADER + "\n".join(row for row, _ in BAD_ROWS) + "\n"


def expected_rejections(name):
    found = {}
    for line, (_, reason) in enumerate(BAD_ROWS, start=2):
        if reason:
            found.setdefault(reason, []).append((name, line))
    return found


def rejections(report):
    by_reason = report.to_json()["datasets"]["day_ahead"]["rows_rejected"]["by_reason"]
    return {reason: [(e["file"], e["line"]) for e in r["examples"]] for reason, r in by_reason.items()}


@pytest.mark.usefixtures("real_data")
@pytest.mark.parametrize("packed", ["csv", "zip member batched with other files"])
def test_malformed_rows_are_reported_with_file_and_line(tmp_path, packed):
    clean = lines_of_days(DA_MONTHLY / "dam_spp_hub_lz_2020-02.csv", {"02/01/2020", "02/02/2020"})
    if packed == "csv":
        (tmp_path / "bad.csv").write_text(BAD_FILE)
        name = str(tmp_path / "bad.csv")
        inputs = [tmp_path / "bad.csv"]
    else:  # the bad member sits between clean ones in one batch: line numbers must still be its own
        archive = tmp_path / "day.zip"
        archive.write_bytes(zip_bytes({"a.csv": clean, "bad.csv": BAD_FILE, "c.csv": clean.replace("02/0", "02/1")}))
        name = f"{archive}!bad.csv"
        inputs = [archive]
    report = ingest(inputs, tmp_path / "data")
    assert rejections(report) == expected_rejections(name)
    by_reason = report.to_json()["datasets"]["day_ahead"]["rows_rejected"]["by_reason"]
    texts = {e["line"]: e["text"] for r in by_reason.values() for e in r["examples"]}
    assert texts[6] == "13/45/2020,05:00,HB_NORTH,20.00,N" and texts[10] == "03/08/2020,08:00,HB_NORTH,20.00"
    values = stored(tmp_path / "data", "day_ahead")
    north = {t: v for (t, p), v in values.items() if p == "HB_NORTH" and t >= utc_ms(2020, 3, 8)}
    # HE01 00:00 CST = 06:00Z; HE02 = 07:00Z; HE04 03:00 CDT = 08:00Z; HE15 14:00 CDT = 19:00Z
    assert north == {
        utc_ms(2020, 3, 8, 6): 20.0,
        utc_ms(2020, 3, 8, 7): 21.5,
        utc_ms(2020, 3, 8, 8): 1234.5,
        utc_ms(2020, 3, 8, 19): -15.0,
    }


@pytest.mark.usefixtures("real_data")
def test_unreadable_and_unknown_files_are_reported_and_skipped(tmp_path):
    good = tmp_path / "in" / "good.csv"
    good.parent.mkdir()
    good.write_text(lines_of_days(DA_MONTHLY / "dam_spp_hub_lz_2020-02.csv", {"02/03/2020"}))
    (tmp_path / "in" / "broken.zip").write_bytes(b"PK\x03\x04" + os.urandom(200))
    (tmp_path / "in" / "latin1.csv").write_bytes(DA_HEADER.encode() + b"02/04/2020,01:00,HB_\xd1ORTH,20.00,N\n")
    (tmp_path / "in" / "book.xlsx").write_bytes(zip_bytes({"[Content_Types].xml": "<x/>", "xl/workbook.xml": "<x/>"}))
    (tmp_path / "in" / "empty.csv").write_bytes(b"")
    (tmp_path / "in" / "notes.txt").write_text("Delivery notes\nnothing here\n")
    (tmp_path / "in" / "lacking.csv").write_text("DeliveryDate,HourEnding,SettlementPoint\n02/04/2020,01:00,HB_NORTH\n")
    report = ingest([tmp_path / "in"], tmp_path / "data").to_json()
    unreadable = {Path(item["file"]).name: item["error"] for item in report["unreadable_files"]}
    unrecognised = {Path(item["file"]).name: item["reason"] for item in report["unrecognised_files"]}
    assert set(unreadable) == {"broken.zip", "latin1.csv"}
    assert "BadZipFile" in unreadable["broken.zip"] and "UTF8" in unreadable["latin1.csv"].upper().replace("-", "")
    assert set(unrecognised) == {"book.xlsx", "empty.csv", "notes.txt", "lacking.csv"}
    assert "Excel" in unrecognised["book.xlsx"] and "lacks settlementpointprice" in unrecognised["lacking.csv"]
    assert len(stored(tmp_path / "data", "day_ahead")) == 24 * 15


@pytest.mark.usefixtures("real_data")
def test_format_comes_from_the_header_not_the_name(tmp_path):
    day = lines_of_days(DA_MONTHLY / "dam_spp_hub_lz_2020-02.csv", {"02/05/2020"})
    (tmp_path / "rtm_NP6-905-CD.zip").write_bytes(zip_bytes({"AS_prices.txt": day}))
    spaced = "Delivery Date,Hour Ending,Repeated Hour Flag,Settlement Point,Settlement Point Price\n"
    (tmp_path / "anything").write_text(spaced + '02/06/2020,01:00,N,HB_NORTH,"1,001.25"\n')
    report = ingest([tmp_path], tmp_path / "data").to_json()["datasets"]["day_ahead"]
    assert report["reports"] == {"NP4-180-ER": 1, "NP4-190-CD": 1}
    assert stored(tmp_path / "data", "day_ahead")[utc_ms(2020, 2, 6, 6), "HB_NORTH"] == 1001.25


@pytest.mark.usefixtures("real_data")
def test_settlement_point_filter(tmp_path):
    inputs = [RT_CSV[2021], DA_MONTHLY / "dam_spp_hub_lz_2021-02.csv"]
    report = ingest(inputs, tmp_path, settlement_points={"HB_NORTH", "LZ_WEST", "HB_NOWHERE"})
    store = load_store(tmp_path)
    for name in ("day_ahead", "real_time_15min", "real_time"):
        assert sorted(store.datasets[name].columns) == ["HB_NORTH", "LZ_WEST"], name
    skipped = report.to_json()["datasets"]["real_time_15min"]["rows_skipped"]
    assert skipped[formats.FILTERED] == 2688 * (23 - 8 - 2)  # 15 points kept as LZ rows, 2 wanted
    assert report.to_json()["settlement_points_not_found"] == ["HB_NOWHERE"]
    assert "--settlement-points not in the input: HB_NOWHERE" in report.summary()


# --- crash safety ------------------------------------------------------------------------------------

CRASHING_RUN = textwrap.dedent(
    """
    import os, sys
    from ercot_fast.ingest import ingest
    mode, count, data_dir, *inputs = sys.argv[1:]
    calls = [0]
    def crash(real):
        def wrapper(*args, **kwargs):
            calls[0] += 1
            if calls[0] == int(count):
                os._exit(9)  # as abrupt as a kill: no cleanup, no finally
            return real(*args, **kwargs)
        return wrapper
    if mode == "rename":
        os.replace = crash(os.replace)  # killed once a new file is complete, before it takes its place
    elif mode == "fsync":
        os.fsync = crash(os.fsync)  # killed before a new file is on disk
    else:  # killed half way through writing a file in the data directory
        import builtins
        real_open = builtins.open
        opened = [0]
        class Torn:
            def __init__(self, f):
                self.f = f
            def write(self, data):
                self.f.write(bytes(data)[: len(data) // 2])
                self.f.flush()
                os._exit(9)
            def __getattr__(self, name):
                return getattr(self.f, name)
            def __enter__(self):
                return self
            def __exit__(self, *exc):
                return self.f.__exit__(*exc)
        def torn_open(file, mode="r", *args, **kwargs):
            f = real_open(file, mode, *args, **kwargs)
            if "w" in mode and str(file).startswith(data_dir):
                opened[0] += 1
                if opened[0] == int(count):
                    return Torn(f)
            return f
        builtins.open = torn_open
    ingest(inputs, data_dir)
    """
)


@pytest.fixture(scope="module")
def old_and_new(real_data, tmp_path_factory):
    """A store from altered copies of DA 2020 (old), and what ingesting the
    real 2020 file over it gives (new)."""
    root = tmp_path_factory.mktemp("crash")
    altered = root / "altered.csv"
    with open(DA_CSV[2020]) as src:
        lines = src.readlines()
    altered.write_text(lines[0] + "".join(line.replace(",N\n", "1,N\n") for line in lines[1:] if line[:2] <= "06"))
    os.utime(altered, ns=(1_500_000_000_000_000_000,) * 2)
    ingest([altered], root / "old")
    shutil.copytree(root / "old", root / "new")
    ingest([DA_CSV[2020]], root / "new")
    return root / "old", root / "new"


def assert_each_file_old_or_new(data_dir, old, new):
    old_tables, new_tables, now = tables(old), tables(new), tables(data_dir)
    assert set(now) <= set(new_tables)
    assert sorted(set(now)) != [] and set(old_tables) <= set(now)
    for name, table in now.items():
        assert table.equals(new_tables[name]) or (name in old_tables and table.equals(old_tables[name])), name
    load_store(data_dir)  # the service loads it


@pytest.mark.parametrize(
    "mode,count", [("rename", 1), ("rename", 4), ("fsync", 1), ("fsync", 7), ("write", 1), ("write", 5)]
)
def test_killed_mid_write_leaves_every_file_old_or_new(tmp_path, old_and_new, mode, count):
    old, new = old_and_new
    data_dir = tmp_path / "data"
    shutil.copytree(old, data_dir)
    script = tmp_path / "crash.py"
    script.write_text(CRASHING_RUN)
    run = subprocess.run([sys.executable, str(script), mode, str(count), str(data_dir), str(DA_CSV[2020])], timeout=120)
    assert run.returncode == 9
    assert_each_file_old_or_new(data_dir, old, new)
    now = tables(data_dir)
    assert any(not now[n].equals(tables(new)[n]) for n in now), "crashed before the end"
    assert list(data_dir.rglob(".*.tmp")), "the crash left its temporary file"
    ingest([DA_CSV[2020]], data_dir)  # the next run completes the work and clears the debris
    assert not list(data_dir.rglob(".*.tmp"))
    final, expected = tables(data_dir), tables(new)
    assert set(final) == set(expected) and all(t.equals(expected[n]) for n, t in final.items())


def test_sigkill_at_random_moments_leaves_a_readable_store(tmp_path, old_and_new):
    old, new = old_and_new
    for attempt, delay in enumerate((0.6, 0.8, 1.0)):
        data_dir = tmp_path / f"data{attempt}"
        shutil.copytree(old, data_dir)
        proc = subprocess.Popen(
            [ERCOT_FAST, "ingest", str(DA_CSV[2020]), "--data-dir", str(data_dir)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        time.sleep(delay)
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        assert_each_file_old_or_new(data_dir, old, new)


def test_one_ingest_at_a_time(tmp_path):
    with layout.locked(open_data_dir(tmp_path)):
        with pytest.raises(IngestError, match="another ingest is running"):
            ingest([DA_MONTHLY / "dam_spp_hub_lz_2020-02.csv"], tmp_path)


# --- the command line, the report, the service -------------------------------------------------------


def test_cli_help_and_missing_input(tmp_path):
    text = build_parser()._subparsers._group_actions[0].choices["ingest"].format_help()
    words = ("--data-dir", "--settlement-points", "--report", "--progress", "NP4-190-CD", "NP6-905-CD", "NP4-188-CD")
    for word in words + ("kill -HUP",):
        assert word in text
    run = subprocess.run(
        [ERCOT_FAST, "ingest", str(tmp_path / "nope"), "--data-dir", str(tmp_path / "d")],
        capture_output=True,
        text=True,
    )
    assert run.returncode != 0 and "does not exist" in run.stderr


def test_progress_bar_draws_on_a_terminal_only():
    class Terminal(io.StringIO):
        def isatty(self):
            return True

    shown = Terminal()
    bar = validation.Progress(1000, stream=shown)
    bar.update(bytes_done=1000, files=1, rows=50)
    bar.close()
    assert "\ringest [" + "#" * 30 + "] 100% 1 files 50 rows" in shown.getvalue()
    quiet = io.StringIO()
    bar = validation.Progress(1000, stream=quiet)
    bar.update(bytes_done=1000, files=1, rows=50)
    bar.close()
    assert quiet.getvalue() == ""


def serve_args(data_dir):
    args = ["--data-dir", str(data_dir), "--workers", "2", "--worker-class", "sync"]
    if "--flight-addr" in build_parser()._subparsers._group_actions[0].choices["serve"].format_help():
        args += ["--flight-addr", f"127.0.0.1:{free_port()}"]
    return args


def get_prices(served, query):
    status, _, body = fetch(f"{served.base}/api/prices?{query}")
    assert status == 200, body
    return json.loads(body)


@pytest.fixture
def served():
    running = []

    def start(data_dir):
        service = Served(serve_args(data_dir), {})
        running.append(service)
        service.wait_ready()
        return service

    yield start
    for service in running:
        service.stop()  # SIGTERM: gunicorn stops its workers too


@pytest.mark.usefixtures("real_data")
def test_cli_ingest_then_serve_and_query_over_http(tmp_path, served):
    report_file = tmp_path / "report.json"
    run = subprocess.run(
        [ERCOT_FAST, "ingest", str(DA_CSV[2020]), str(RT_CSV[2021])]
        + ["--data-dir", str(tmp_path / "data"), "--report", str(report_file)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert run.returncode == 0, run.stderr
    assert "day_ahead (NP4-190-CD x1):" in run.stdout and "covered 2020-01-01 .. 2020-12-31" in run.stdout
    report = json.loads(report_file.read_text())
    assert report["datasets"]["day_ahead"]["values"]["added"] == 131_760
    assert report["datasets"]["real_time_15min"]["covered"]["days"] == 28
    service = served(tmp_path / "data")
    answer = get_prices(service, "start_date=2020-11-01&end_date=2020-11-01&hubs=HB_NORTH,LZ_WEST&price_type=day_ahead")
    oracle = as_ms(read_da_csv(DA_CSV[2020]))
    day = sorted(t for t, p in oracle if p == "HB_NORTH" and utc_ms(2020, 11, 1, 5) <= t < utc_ms(2020, 11, 2, 6))
    assert answer["timestamps"] == [timeutil.format_instant(t) for t in day]
    assert answer["data"][0]["prices"] == [oracle[t, "HB_NORTH"] for t in day]
    assert answer["data"][1]["prices"] == [oracle[t, "LZ_WEST"] for t in day]
    query = "start_date=2021-02-17&end_date=2021-02-17&hubs=HB_NORTH&price_type=rt&resolution=15min"
    answer = get_prices(service, query)
    assert len(answer["timestamps"]) == 96 and max(answer["data"][0]["prices"]) == 9315.45


@pytest.mark.usefixtures("real_data")
def test_sighup_after_ingest_serves_the_new_day(tmp_path, served):
    november = DA_MONTHLY / "dam_spp_hub_lz_2020-11.csv"
    (tmp_path / "day1.csv").write_text(lines_of_days(november, {"11/01/2020"}))
    (tmp_path / "day2.csv").write_text(lines_of_days(november, {"11/02/2020"}))
    data_dir = tmp_path / "data"
    ingest([tmp_path / "day1.csv"], data_dir)
    service = served(data_dir)
    query = "start_date=2020-11-01&end_date=2020-11-02&hubs=HB_NORTH&price_type=day_ahead"
    assert len(get_prices(service, query)["timestamps"]) == 25
    ingest([tmp_path / "day2.csv"], data_dir)
    os.kill(service.proc.pid, signal.SIGHUP)
    deadline = time.monotonic() + 60
    while len(get_prices(service, query)["timestamps"]) != 49:
        assert time.monotonic() < deadline, "the reload did not show day 2"
        time.sleep(0.2)
    prices = get_prices(service, query)["data"][0]["prices"]
    oracle = as_ms(read_da_csv(november))
    assert prices[25:] == [oracle[t, "HB_NORTH"] for t in sorted(t for t, p in oracle if p == "HB_NORTH")][25:49]
    assert service.proc.poll() is None


def test_ingested_files_win_over_the_older_pipeline_files(tmp_path, legacy_dir):
    shutil.copytree(legacy_dir, tmp_path / "data")
    legacy = load_store(tmp_path / "data").datasets["day_ahead"]
    assert day_counts(legacy.timestamps)[dt.date(2020, 11, 1)] == 24  # the collapsed fall-back hour
    corrected = tmp_path / "day.csv"
    corrected.write_text(
        lines_of_days(DA_MONTHLY / "dam_spp_hub_lz_2020-11.csv", {"11/01/2020"}).replace(
            "01:00,HB_NORTH,", "01:00,HB_NORTH,1"
        )
    )
    ingest([corrected], tmp_path / "data")
    dataset = load_store(tmp_path / "data").datasets["day_ahead"]
    assert day_counts(dataset.timestamps)[dt.date(2020, 11, 1)] == 25
    at = int(np.searchsorted(dataset.timestamps, utc_ms(2020, 11, 1, 5)))
    north = dataset.columns["HB_NORTH"][at : at + 3].to_pylist()
    assert north[1:] == [21.26, 21.08]
    legacy_at = int(np.searchsorted(legacy.timestamps, utc_ms(2020, 11, 1, 5)))
    assert north[0] != legacy.columns["HB_NORTH"][legacy_at].as_py()
    assert len(dataset) == len(legacy) + 1
