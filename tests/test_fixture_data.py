"""Real ERCOT prices without ../shared: tests/data's cut of the shared data
(tests/data/README.md) through the store, the HTTP contract, ingest and the
served stack, each checked against an independent reading of the fixture's
report files (reference_layout: csv module and zoneinfo, row by row). Then the
switch that skips, or fails, the tests that need all of ../shared/data/ercot."""
import datetime as dt
import json
import logging
import os
import subprocess
import sys
import zipfile
from collections import Counter
from pathlib import Path

import numpy as np
import pyarrow.flight as flight
import pytest

from ercot_fast.ingest import formats, ingest
from ercot_fast.store.load import load_store
from reference_layout import (
    CENTRAL,
    DA_CSV,
    FIXTURE_DA,
    FIXTURE_DATA,
    FIXTURE_RT,
    RT_CSV,
    ms,
    read_all,
    read_da_csv,
    read_rt_csv,
    utc_ms,
)
from serving import ERCOT_FAST, Served, fetch

UTC = dt.timezone.utc
ISO_Z = "%Y-%m-%dT%H:%M:%SZ"
ROOT = Path(__file__).resolve().parents[1]
DA_HEADER = b"DeliveryDate,HourEnding,SettlementPoint,SettlementPointPrice,DSTFlag\n"
RT_HEADER = (
    b"DeliveryDate,DeliveryHour,DeliveryInterval,SettlementPointName,SettlementPointType,SettlementPointPrice,DSTFlag\n"
)
LOAD_ZONES = 8  # each with an LZ and an LZEW row in NP6-905-CD


def days(first, last):
    return [first + dt.timedelta(days=k) for k in range((last - first).days + 1)]


URI = days(dt.date(2021, 2, 14), dt.date(2021, 2, 20))
SPRING_FORWARD, FALL_BACK = dt.date(2020, 3, 8), dt.date(2020, 11, 1)
HB_PAN_FIRST = days(dt.date(2019, 4, 4), dt.date(2019, 4, 8))
# what the fixture must hold (tests/data/README.md): ZIP name -> delivery dates
CUT_DAYS = {
    "np4_190_cd/dam_spp_hub_lz_20190404_20190408.zip": HB_PAN_FIRST,
    "np4_190_cd/dam_spp_hub_lz_20200308.zip": [SPRING_FORWARD],
    "np4_190_cd/dam_spp_hub_lz_20201101.zip": [FALL_BACK],
    "np4_190_cd/dam_spp_hub_lz_20210214_20210220.zip": URI,
    "np6_905_cd/rtm_spp_hub_lz_20210214_20210220.zip": URI,
}
DA_DAYS = sorted(HB_PAN_FIRST + [SPRING_FORWARD, FALL_BACK] + URI)


def hours_in(day):
    """Length of a Central market day in hours, from zoneinfo's offsets."""
    start = dt.datetime.combine(day, dt.time(), CENTRAL).astimezone(UTC)
    end = dt.datetime.combine(day + dt.timedelta(days=1), dt.time(), CENTRAL).astimezone(UTC)
    return (end - start) // dt.timedelta(hours=1)


def central_day(day):
    return dt.datetime.combine(day, dt.time(), CENTRAL).astimezone(UTC)


def market_days(timestamps):
    """Central market day -> number of instants, through zoneinfo."""
    return Counter(dt.datetime.fromtimestamp(t / 1000, CENTRAL).date() for t in timestamps.tolist())


def member(path):
    """The one CSV of a fixture ZIP: (name, bytes)."""
    with zipfile.ZipFile(path) as archive:
        [name] = archive.namelist()
        return name, archive.read(name)


def values(dataset):
    """{(utc ms, settlement point): price} of every non-null value of a store data set."""
    times = dataset.timestamps.tolist()
    return {
        (t, point): v
        for point, column in dataset.columns.items()
        for t, v in zip(times, column.to_pylist())
        if v is not None
    }


def as_ms(prices):
    return {(ms(t), p): v for (t, p), v in prices.items()}


def series(prices, point, start, end):
    """(ISO timestamps, prices) of one point from an oracle dict, start <= t < end."""
    times = sorted(t for t, p in prices if p == point and start <= t < end)
    return [t.strftime(ISO_Z) for t in times], [prices[t, point] for t in times]


def get(client, **params):
    resp = client.simulate_get("/api/prices", params=params)
    assert resp.status_code == 200, resp.text
    return resp


@pytest.fixture(scope="module")
def fixture_da():
    return read_all(read_da_csv, FIXTURE_DA)


@pytest.fixture(scope="module")
def fixture_rt():
    return read_all(read_rt_csv, FIXTURE_RT)


# --- the fixture itself ----------------------------------------------------------------


def test_fixture_is_small_and_holds_the_cut_days_in_report_columns():
    files = [p for p in FIXTURE_DATA.rglob("*") if p.is_file() and "__pycache__" not in p.parts]
    assert sum(p.stat().st_size for p in files) < 400_000
    assert sorted(p.relative_to(FIXTURE_DATA).as_posix() for p in FIXTURE_DA + FIXTURE_RT) == sorted(CUT_DAYS)
    for path in FIXTURE_DA + FIXTURE_RT:
        name, data = member(path)
        assert name == path.with_suffix(".csv").name
        header, *rows = data.decode().splitlines(keepends=True)
        dates = Counter(dt.datetime.strptime(row[:10], "%m/%d/%Y").date() for row in rows)
        cut_days = CUT_DAYS[path.relative_to(FIXTURE_DATA).as_posix()]
        assert sorted(dates) == cut_days, path.name
        if path in FIXTURE_DA:
            assert header.encode() == DA_HEADER
            # 7 hubs and 8 load zones an hour; HB_PAN has no rows before 2019-04-06
            assert dates == {d: hours_in(d) * (15 if d >= dt.date(2019, 4, 6) else 14) for d in cut_days}, path.name
        else:
            assert header.encode() == RT_HEADER
            assert dates == {d: 96 * (15 + LOAD_ZONES) for d in cut_days}  # LZEW rows kept, as in the source
            assert sum(row.split(",")[4] == "LZEW" for row in rows) == LOAD_ZONES * 96 * len(cut_days)
    assert [hours_in(d) for d in (SPRING_FORWARD, FALL_BACK)] == [23, 25]


def test_fixture_rows_are_the_shared_rows_unchanged(real_data):
    for path in FIXTURE_DA + FIXTURE_RT:
        cut_days = CUT_DAYS[path.relative_to(FIXTURE_DATA).as_posix()]
        source = (DA_CSV if path in FIXTURE_DA else RT_CSV)[cut_days[0].year]
        dates = {d.strftime("%m/%d/%Y").encode() for d in cut_days}
        with open(source, "rb") as f:
            expected = f.readline() + b"".join(line for line in f if line[:10] in dates)
        assert member(path)[1] == expected, path.name
    # and make_fixture.py writes these very bytes
    check = subprocess.run(
        [sys.executable, str(FIXTURE_DATA / "make_fixture.py"), "--check", "--shared", str(real_data)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert check.returncode == 0, check.stderr


# --- the store, from a reference layout written from the fixture ----------------------


def test_store_holds_every_fixture_price_and_nothing_else(fixture_store, fixture_da, fixture_rt):
    for name, oracle in (("day_ahead", fixture_da), ("real_time_15min", fixture_rt)):
        dataset = fixture_store.datasets[name]
        assert dataset.timestamps.tolist() == sorted({ms(t) for t, _ in oracle}), name
        assert values(dataset) == as_ms(oracle), name
    points = fixture_store.settlement_points
    assert points[:7] == ("HB_BUSAVG", "HB_HOUSTON", "HB_HUBAVG", "HB_NORTH", "HB_PAN", "HB_SOUTH", "HB_WEST")
    assert points[7:] == tuple(sorted(p for p in points if p.startswith("LZ_"))) and len(points) == 15
    assert not fixture_store.synthetic


def test_market_days_have_23_24_or_25_hours(fixture_store):
    assert market_days(fixture_store.datasets["day_ahead"].timestamps) == {d: hours_in(d) for d in DA_DAYS}
    assert market_days(fixture_store.datasets["real_time_15min"].timestamps) == {d: 96 for d in URI}
    assert market_days(fixture_store.datasets["real_time"].timestamps) == {d: 24 for d in URI}
    assert sorted(Counter(map(hours_in, DA_DAYS)).items()) == [(23, 1), (24, 12), (25, 1)]


def test_fall_back_hour_is_two_instants(fixture_store):
    dataset = fixture_store.datasets["day_ahead"]
    # HE02 on 2020-11-01: 01:00 CDT = 06:00Z (DSTFlag N), 01:00 CST = 07:00Z (DSTFlag Y)
    at = int(np.searchsorted(dataset.timestamps, utc_ms(2020, 11, 1, 6)))
    assert dataset.timestamps[at : at + 2].tolist() == [utc_ms(2020, 11, 1, 6), utc_ms(2020, 11, 1, 7)]
    assert dataset.columns["HB_NORTH"][at : at + 2].to_pylist() == [21.26, 21.08]


def test_real_time_hourly_is_the_mean_of_its_intervals(fixture_store, fixture_rt):
    hourly = fixture_store.datasets["real_time"]
    points = sorted({p for _, p in fixture_rt})
    for t in hourly.timestamps.tolist():
        start = dt.datetime.fromtimestamp(t / 1000, UTC)
        quarters = [start + dt.timedelta(minutes=15 * k) for k in range(4)]
        at = int(np.searchsorted(hourly.timestamps, t))
        for point in points:
            mean = sum(fixture_rt[q, point] for q in quarters) / 4
            assert hourly.columns[point][at].as_py() == pytest.approx(mean, abs=1e-9), (start, point)


def test_legacy_layout_of_the_fixture(fixture_legacy_dir, fixture_store, caplog):
    with caplog.at_level(logging.WARNING):
        legacy = load_store(fixture_legacy_dir).datasets["day_ahead"]
    correct = fixture_store.datasets["day_ahead"]
    # the collapsed fall-back hour keeps its one (first, CDT) row; all else is identical
    assert sorted(set(correct.timestamps.tolist()) - set(legacy.timestamps.tolist())) == [utc_ms(2020, 11, 1, 7)]
    at = int(np.searchsorted(legacy.timestamps, utc_ms(2020, 11, 1, 6)))
    assert legacy.columns["HB_NORTH"][at].as_py() == 21.26
    lo = int(np.searchsorted(legacy.timestamps, utc_ms(2021, 2, 17, 6)))
    uri = legacy.columns["HB_NORTH"].slice(lo, 24).to_numpy()
    assert float(uri.sum()) / 24 == pytest.approx(8833.655, abs=1e-6) and uri.max() == 8998.99
    assert "day_ahead: 1 market days with fewer intervals than the clock has (first 2020-11-01)" in caplog.text


# --- the HTTP contract (API.md) over the fixture -----------------------------------------


def test_winter_storm_uri_day_ahead(fixture_client, fixture_da):
    body = get(
        fixture_client, start_date="2021-02-17", end_date="2021-02-17", hubs="HB_NORTH,HB_HOUSTON", price_type="da"
    ).json
    start, end = central_day(dt.date(2021, 2, 17)), central_day(dt.date(2021, 2, 18))
    times, north = series(fixture_da, "HB_NORTH", start, end)
    assert body["timestamps"] == times and len(times) == 24 and times[0] == "2021-02-17T06:00:00Z"
    assert [s["hub"] for s in body["data"]] == ["HB_NORTH", "HB_HOUSTON"]
    assert body["data"][0]["prices"] == north
    assert body["data"][1]["prices"] == series(fixture_da, "HB_HOUSTON", start, end)[1]
    # the README's 8,833.66 is 8,833.655 rounded half up
    assert sum(north) / 24 == pytest.approx(8833.655, abs=1e-6) and max(north) == 8998.99


def test_fall_back_day_has_both_prices_of_he02(fixture_client, fixture_da):
    body = get(fixture_client, start_date="2020-11-01", end_date="2020-11-01", hubs="HB_NORTH", price_type="da").json
    day = (central_day(FALL_BACK), central_day(FALL_BACK + dt.timedelta(days=1)))
    times, north = series(fixture_da, "HB_NORTH", *day)
    assert body["timestamps"] == times and len(times) == 25
    assert body["timestamps"][1:3] == ["2020-11-01T06:00:00Z", "2020-11-01T07:00:00Z"]
    assert body["data"][0]["prices"] == north and north[1:3] == [21.26, 21.08]
    local = get(
        fixture_client, start_date="2020-11-01", end_date="2020-11-01", hubs="HB_NORTH", price_type="da", tz=CENTRAL.key
    ).json["timestamps"]
    assert local[:3] == ["2020-11-01T00:00:00-05:00", "2020-11-01T01:00:00-05:00", "2020-11-01T01:00:00-06:00"]


def test_spring_forward_day_has_23_hours(fixture_client, fixture_da):
    body = get(fixture_client, start_date="2020-03-08", end_date="2020-03-08", hubs="HB_WEST", price_type="da").json
    day = (central_day(SPRING_FORWARD), central_day(SPRING_FORWARD + dt.timedelta(days=1)))
    times, west = series(fixture_da, "HB_WEST", *day)
    assert body["timestamps"] == times and len(times) == 23
    assert body["data"][0]["prices"] == west
    local = get(
        fixture_client, start_date="2020-03-08", end_date="2020-03-08", hubs="HB_WEST", price_type="da", tz=CENTRAL.key
    ).json["timestamps"]
    assert local[1:3] == ["2020-03-08T01:00:00-06:00", "2020-03-08T03:00:00-05:00"]  # 02:00 does not exist


def test_hb_pan_is_null_before_2019_04_06(fixture_client, fixture_da):
    resp = get(fixture_client, start_date="2019-04-04", end_date="2019-04-08", hubs="HB_PAN,HB_NORTH", price_type="da")
    body = resp.json
    start, end = central_day(dt.date(2019, 4, 4)), central_day(dt.date(2019, 4, 9))
    times, north = series(fixture_da, "HB_NORTH", start, end)
    pan_times, pan = series(fixture_da, "HB_PAN", start, end)
    assert body["timestamps"] == times and len(times) == 5 * 24
    assert pan_times == times[48:] and pan_times[0] == "2019-04-06T05:00:00Z"
    assert body["data"][0]["prices"] == [None] * 48 + pan
    assert body["data"][1]["prices"] == north
    assert resp.content.count(b"null") == 48 and b"NaN" not in resp.content


def test_winter_storm_uri_real_time(fixture_client, fixture_rt):
    start, end = central_day(dt.date(2021, 2, 19)), central_day(dt.date(2021, 2, 20))
    day = {"start_date": "2021-02-19", "end_date": "2021-02-19", "hubs": "HB_NORTH"}
    native = get(fixture_client, **day, price_type="rt", resolution="15min").json
    times, quarter = series(fixture_rt, "HB_NORTH", start, end)
    assert native["timestamps"] == times and len(times) == 96
    assert native["data"][0]["prices"] == quarter
    hourly = get(fixture_client, **day, price_type="real_time").json
    assert len(hourly["timestamps"]) == 24
    for hour, mean in enumerate(hourly["data"][0]["prices"]):
        assert mean == pytest.approx(sum(quarter[4 * hour : 4 * hour + 4]) / 4, abs=1e-9)
    # HE10 (09:00 CST = 15:00Z): the end of the emergency pricing, after an HE09 near the cap
    assert min(quarter[32:36]) > 8900 and quarter[36:38] == [3210.81, 32.05]
    uri_17 = {"start_date": "2021-02-17", "end_date": "2021-02-17", "hubs": "HB_NORTH"}
    assert max(get(fixture_client, **uri_17, price_type="rt", resolution="15min").json["data"][0]["prices"]) == 9315.45


def test_combined_is_day_ahead_and_real_time(fixture_client, fixture_da, fixture_rt):
    uri_17 = {"start_date": "2021-02-17", "end_date": "2021-02-17", "hubs": "HB_NORTH"}
    body = get(fixture_client, **uri_17, price_type="combined").json
    start = central_day(dt.date(2021, 2, 17))
    hours = [start + dt.timedelta(hours=h) for h in range(24)]
    assert body["timestamps"] == [h.strftime(ISO_Z) for h in hours]
    assert [s["hub"] for s in body["data"]] == ["DA_HB_NORTH", "RT_HB_NORTH"]  # no ancillary data in the fixture
    assert body["data"][0]["prices"] == [fixture_da[h, "HB_NORTH"] for h in hours]
    rt_means = [sum(fixture_rt[h + dt.timedelta(minutes=15 * k), "HB_NORTH"] for k in range(4)) / 4 for h in hours]
    assert body["data"][1]["prices"] == pytest.approx(rt_means, abs=1e-9)


def test_a_range_across_the_cuts_skips_the_days_between(fixture_client, fixture_da):
    body = get(fixture_client, start_date="2019-04-01", end_date="2021-03-01", hubs="LZ_WEST", price_type="da").json
    times, west = series(fixture_da, "LZ_WEST", central_day(dt.date(2019, 4, 1)), central_day(dt.date(2021, 3, 2)))
    assert body["timestamps"] == times and body["data"][0]["prices"] == west
    assert len(times) == sum(hours_in(d) for d in DA_DAYS)


def test_available_hubs_are_the_fixture_points(fixture_client, fixture_da):
    points = {p for _, p in fixture_da}
    hubs, zones = sorted(p for p in points if p.startswith("HB_")), sorted(p for p in points if p.startswith("LZ_"))
    assert fixture_client.simulate_get("/api/available_hubs").json == hubs + zones
    assert len(hubs) == 7 and len(zones) == LOAD_ZONES


# --- ingest of the fixture's report ZIPs ---------------------------------------------------


@pytest.fixture(scope="module")
def ingested(tmp_path_factory):
    data_dir = tmp_path_factory.mktemp("fixture_ingested")
    report = ingest([FIXTURE_DATA / "np4_190_cd", FIXTURE_DATA / "np6_905_cd"], data_dir)
    return data_dir, report.to_json()


def test_ingest_of_the_fixture_keeps_every_price(ingested, fixture_da, fixture_rt, fixture_store):
    data_dir, report = ingested
    store = load_store(data_dir)
    assert values(store.datasets["day_ahead"]) == as_ms(fixture_da)
    assert values(store.datasets["real_time_15min"]) == as_ms(fixture_rt)
    # the reference layout and ingest agree, hourly real-time means included
    for name in ("day_ahead", "real_time_15min", "real_time"):
        got, want = store.datasets[name], fixture_store.datasets[name]
        assert got.timestamps.tolist() == want.timestamps.tolist(), name
        assert sorted(got.columns) == sorted(want.columns), name
        assert all(got.columns[p].equals(want.columns[p]) for p in want.columns), name
    day_ahead, real_time = report["datasets"]["day_ahead"], report["datasets"]["real_time_15min"]
    assert day_ahead["reports"] == {"NP4-190-CD": 4} and real_time["reports"] == {"NP6-905-CD": 1}
    assert day_ahead["rows_rejected"]["count"] == real_time["rows_rejected"]["count"] == 0
    assert day_ahead["values"]["added"] == len(fixture_da) and real_time["values"]["added"] == len(fixture_rt)
    assert real_time["rows_skipped"] == {formats.ENERGY_WEIGHTED: LOAD_ZONES * 96 * len(URI)}
    assert day_ahead["series_gaps"] == {
        "HB_PAN": {"missing": 48, "first": "2019-04-04T05:00:00Z", "last": "2019-04-06T04:00:00Z"}
    }
    assert report["unreadable_files"] == [] and report["unrecognised_files"] == []


def test_reingesting_the_fixture_changes_nothing(tmp_path):
    inputs = list(FIXTURE_DA + FIXTURE_RT)
    ingest(inputs, tmp_path)
    before = {p: (p.read_bytes(), p.stat().st_mtime_ns) for p in sorted(tmp_path.rglob("*.parquet"))}
    report = ingest(inputs[::-1], tmp_path).to_json()
    assert {p: (p.read_bytes(), p.stat().st_mtime_ns) for p in sorted(tmp_path.rglob("*.parquet"))} == before
    for name in ("day_ahead", "real_time_15min"):
        counts = report["datasets"][name]["values"]
        assert counts["added"] == counts["changed"] == 0 and counts["unchanged"] > 0, name
        assert report["datasets"][name]["files_written"] == [], name


def test_cli_ingest_then_serve_over_http_and_flight(tmp_path, fixture_da):
    data_dir = tmp_path / "data"
    run = subprocess.run(
        [ERCOT_FAST, "ingest", str(FIXTURE_DATA / "np4_190_cd"), str(FIXTURE_DATA / "np6_905_cd")]
        + ["--data-dir", str(data_dir)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert run.returncode == 0, run.stderr
    assert "day_ahead (NP4-190-CD x4):" in run.stdout and "real_time_15min (NP6-905-CD x1):" in run.stdout
    served = Served(["--data-dir", str(data_dir), "--workers", "1", "--worker-class", "sync"], {})
    try:
        status, _, body = served.wait_ready()
        assert status == 200 and json.loads(body)["status"] == "healthy"
        query = "start_date=2020-11-01&end_date=2020-11-01&hubs=HB_NORTH&price_type=da"
        status, _, body = fetch(f"{served.base}/api/prices?{query}")
        answer = json.loads(body)
        day = (central_day(FALL_BACK), central_day(FALL_BACK + dt.timedelta(days=1)))
        times, north = series(fixture_da, "HB_NORTH", *day)
        assert status == 200 and answer["timestamps"] == times and answer["data"][0]["prices"] == north
        ticket = {"start_date": "2020-11-01", "end_date": "2020-11-01", "hubs": ["HB_NORTH"], "price_type": "da"}
        ticket["layout"] = "wide"
        with flight.connect(served.flight_location) as client:
            client.wait_for_available(timeout=30)
            table = client.do_get(flight.Ticket(json.dumps(ticket).encode())).read_all()
        assert table.column("HB_NORTH").to_pylist() == north
        assert [t.strftime(ISO_Z) for t in table.column("datetime").to_pylist()] == times
    finally:
        log = served.stop()
    assert served.proc.returncode == 0, log


# --- the switch: tests that need all of ../shared/data/ercot -----------------------------


def test_shared_data_has_the_files_the_tests_read(real_data):
    """Run by the two tests below in a pytest of its own, as the smallest test that needs the real data."""
    wanted = [*DA_CSV.values(), *RT_CSV.values(), real_data / "np4_190_cd" / "monthly", real_data / "raw_ercot_reports"]
    assert [p for p in wanted if not p.exists()] == []


def run_the_probe(tmp_path, shared, require):
    """pytest, in a subprocess, on test_shared_data_has_the_files_the_tests_read alone."""
    env = {**os.environ, "ERCOT_FAST_SHARED_DATA": str(shared)}
    env.pop("ERCOT_FAST_REQUIRE_REAL_DATA", None)
    if require:
        env["ERCOT_FAST_REQUIRE_REAL_DATA"] = "1"
    probe = f"{Path(__file__).resolve().relative_to(ROOT)}::test_shared_data_has_the_files_the_tests_read"
    return subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-rs", "--basetemp", str(tmp_path / "basetemp"), probe],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )


def test_without_the_shared_data_a_test_needing_it_is_skipped(tmp_path):
    missing = tmp_path / "no_shared_data"
    run = run_the_probe(tmp_path, missing, require=False)
    assert run.returncode == 0, run.stdout + run.stderr
    assert run.stdout.splitlines()[0].startswith("s ") and "1 skipped" in run.stdout
    assert "SKIPPED [1] tests/test_fixture_data.py" in run.stdout
    assert f"needs the real ERCOT data in {missing}, which is not a directory" in run.stdout


def test_without_the_shared_data_and_required_a_test_needing_it_fails(tmp_path):
    missing = tmp_path / "no_shared_data"
    run = run_the_probe(tmp_path, missing, require=True)
    assert run.returncode == 1, run.stdout + run.stderr
    assert "1 error" in run.stdout and "skipped" not in run.stdout
    assert f"needs the real ERCOT data in {missing}, which is not a directory" in run.stdout
    assert "ERCOT_FAST_REQUIRE_REAL_DATA=1 makes this a failure" in run.stdout


def test_the_shared_data_is_found_where_the_environment_says(real_data, tmp_path):
    elsewhere = tmp_path / "elsewhere"
    elsewhere.symlink_to(real_data, target_is_directory=True)
    run = run_the_probe(tmp_path, elsewhere, require=True)
    assert run.returncode == 0 and "1 passed" in run.stdout, run.stdout + run.stderr
