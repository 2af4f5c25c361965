"""The HTTP contract (API.md), row by row, through falcon.testing, with values
checked against an independent computation from the real CSVs."""
import datetime as dt
import json
import re

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from falcon import testing

from ercot_fast.api.app import create_app
from ercot_fast.store.load import load_store
from reference_layout import CENTRAL, DA_CSV, RT_CSV, read_da_csv, read_rt_csv

UTC = dt.timezone.utc
ISO_Z = "%Y-%m-%dT%H:%M:%SZ"


@pytest.fixture(scope="module")
def da_prices(real_data):
    prices = {}
    for path in DA_CSV.values():
        prices.update(read_da_csv(path))
    return prices


@pytest.fixture(scope="module")
def rt_prices(real_data):
    prices = {}
    for path in RT_CSV.values():
        prices.update(read_rt_csv(path))
    return prices


def get(client, **params):
    return client.simulate_get("/api/prices", params=params)


def expected_series(prices, point, start, end):
    """(timestamps, prices) from the CSV dict for start <= t <= end (aware datetimes)."""
    times = sorted(t for (t, p) in prices if p == point and start <= t <= end)
    return [t.strftime(ISO_Z) for t in times], [prices[t, point] for t in times]


def central_day(year, month, day):
    return dt.datetime(year, month, day, tzinfo=CENTRAL).astimezone(UTC)


# --- GET /api/prices ---------------------------------------------------------------------


def test_shape_key_order_and_values(client, da_prices):
    resp = get(client, start_date="2021-02-17", end_date="2021-02-17", hubs="HB_NORTH,HB_HOUSTON", price_type="day_ahead")
    assert resp.status_code == 200
    assert resp.headers["content-type"] == "application/json"
    body = resp.json
    assert list(body) == ["timestamps", "data"]
    assert [list(s) for s in body["data"]] == [["hub", "prices"], ["hub", "prices"]]
    assert [s["hub"] for s in body["data"]] == ["HB_NORTH", "HB_HOUSTON"]  # request order
    start, end = central_day(2021, 2, 17), central_day(2021, 2, 18) - dt.timedelta(hours=1)
    times, north = expected_series(da_prices, "HB_NORTH", start, end)
    assert body["timestamps"] == times
    assert body["timestamps"][0] == "2021-02-17T06:00:00Z"
    assert body["data"][0]["prices"] == north
    assert round(sum(north) / 24, 2) == pytest.approx(8833.66)  # Winter Storm Uri (README fact)
    assert body["data"][1]["prices"] == expected_series(da_prices, "HB_HOUSTON", start, end)[1]


@pytest.mark.parametrize(
    "start,end",
    [
        ("2021-02-17T06:00:00Z", "2021-02-18T05:00:00Z"),
        ("2021-02-17T06:00:00.000Z", "2021-02-18T05:00:00.000Z"),  # JS toISOString()
        ("2021-02-17T00:00:00-06:00", "2021-02-17T23:00:00-06:00"),
        ("2021-02-17T01:00:00-05:00", "2021-02-18T00:00:00-05:00"),
        ("2021-02-17", "2021-02-17"),
    ],
)
def test_date_forms_and_inclusive_ends(client, start, end):
    resp = get(client, start_date=start, end_date=end, hubs="HB_NORTH", price_type="da")
    assert resp.status_code == 200, resp.text
    assert len(resp.json["timestamps"]) == 24
    assert resp.json["timestamps"][0] == "2021-02-17T06:00:00Z"
    assert resp.json["timestamps"][-1] == "2021-02-18T05:00:00Z"


def test_unencoded_plus_offset_is_understood(client):
    """A '+' left unencoded in a URL arrives as a space; it can only be an offset's sign."""
    raw = "start_date=2021-02-17T11:00:00+05:00&end_date=2021-02-17T12:00:00+05:00&hubs=HB_NORTH&price_type=da"
    resp = client.simulate_get("/api/prices", query_string=raw)
    assert resp.status_code == 200, resp.text
    assert resp.json["timestamps"] == ["2021-02-17T06:00:00Z", "2021-02-17T07:00:00Z"]


def test_fall_back_day_has_both_repeated_hour_prices(client):
    resp = get(client, start_date="2020-11-01", end_date="2020-11-01", hubs="HB_NORTH", price_type="DA")
    body = resp.json
    assert len(body["timestamps"]) == 25
    assert body["timestamps"][1:3] == ["2020-11-01T06:00:00Z", "2020-11-01T07:00:00Z"]
    assert body["data"][0]["prices"][1:3] == [21.26, 21.08]


def test_spring_forward_day_has_23_hours(client):
    resp = get(client, start_date="2021-03-14", end_date="2021-03-14", hubs="HB_NORTH", price_type="day_ahead")
    assert len(resp.json["timestamps"]) == 23


def test_tz_central_prints_real_offsets(client):
    resp = get(
        client, start_date="2020-11-01", end_date="2020-11-01", hubs="HB_NORTH", price_type="day_ahead", tz="America/Chicago"
    )
    times = resp.json["timestamps"]
    assert times[:3] == ["2020-11-01T00:00:00-05:00", "2020-11-01T01:00:00-05:00", "2020-11-01T01:00:00-06:00"]
    assert times[-1] == "2020-11-01T23:00:00-06:00"


def test_range_spans_months_and_years(client, da_prices):
    resp = get(client, start_date="2019-12-31", end_date="2021-01-01", hubs="HB_WEST", price_type="day_ahead")
    start, end = central_day(2019, 12, 31), central_day(2021, 1, 2) - dt.timedelta(hours=1)
    times, west = expected_series(da_prices, "HB_WEST", start, end)
    assert resp.json["timestamps"] == times
    assert resp.json["data"][0]["prices"] == west
    assert len(times) == 24 + 8784 + 24


def test_missing_values_are_null(client):
    # HB_PAN has no prices before 2019-04-06
    resp = get(client, start_date="2019-04-05", end_date="2019-04-06", hubs="HB_PAN", price_type="day_ahead")
    prices = resp.json["data"][0]["prices"]
    assert prices[:24] == [None] * 24
    assert all(isinstance(p, float) for p in prices[24:])
    assert b"NaN" not in resp.content
    assert resp.content.count(b"null") == 24


def test_numbers_are_shortest_round_trip(client, da_prices):
    resp = get(client, start_date="2020-01-01", end_date="2020-12-31", hubs="HB_NORTH,LZ_WEST", price_type="day_ahead")
    text = resp.text
    numbers = re.findall(r"-?\d+\.\d+(?:e[+-]?\d+)?", text.split('"data"', 1)[1])
    assert numbers and all(n == repr(float(n)) for n in numbers)
    assert "00000000" not in text and "99999999" not in text


def test_hubs_trimmed_and_case_insensitive_price_type(client):
    a = get(client, start_date="2021-02-17", end_date="2021-02-17", hubs=" HB_NORTH , HB_WEST ", price_type="Day_Ahead")
    b = get(client, start_date="2021-02-17", end_date="2021-02-17", hubs="HB_NORTH,HB_WEST", price_type="day_ahead")
    assert a.status_code == 200 and a.content == b.content


def test_real_time_hourly_mean_and_15min(client, rt_prices):
    hourly = get(client, start_date="2021-02-19", end_date="2021-02-19", hubs="HB_NORTH", price_type="rt").json
    native = get(
        client, start_date="2021-02-19", end_date="2021-02-19", hubs="HB_NORTH", price_type="real_time", resolution="15min"
    ).json
    start = central_day(2021, 2, 19)
    times, quarter = expected_series(rt_prices, "HB_NORTH", start, start + dt.timedelta(hours=23, minutes=45))
    assert native["timestamps"] == times and native["data"][0]["prices"] == quarter
    assert len(hourly["timestamps"]) == 24
    for hour, mean in enumerate(hourly["data"][0]["prices"]):
        assert mean == pytest.approx(sum(quarter[4 * hour : 4 * hour + 4]) / 4, abs=1e-9)
    # emergency pricing ends in HE10 (README fact): 3,210.81 then 32.05 within the hour
    assert 3210.81 in quarter and 32.05 in quarter


def test_combined_is_da_rt_and_as(client, da_prices):
    resp = get(client, start_date="2021-02-17", end_date="2021-02-17", hubs="HB_NORTH,HB_WEST", price_type="combined")
    body = resp.json
    assert [s["hub"] for s in body["data"]] == ["DA_HB_NORTH", "RT_HB_NORTH", "DA_HB_WEST", "RT_HB_WEST"]
    assert len(body["timestamps"]) == 24
    start = central_day(2021, 2, 17)
    assert body["data"][0]["prices"] == expected_series(da_prices, "HB_NORTH", start, start + dt.timedelta(hours=23))[1]
    assert all(p is not None for p in body["data"][1]["prices"])


def test_combined_aligns_different_timelines(client):
    # DA exists for every hour of 2021-01-31 .. 2021-02-01; RT only from February 1st
    resp = get(client, start_date="2021-01-31", end_date="2021-02-01", hubs="HB_NORTH", price_type="combined")
    body = resp.json
    assert len(body["timestamps"]) == 48
    assert body["data"][1]["prices"][:24] == [None] * 24
    assert None not in body["data"][1]["prices"][24:]


def test_empty_range_is_200_with_empty_arrays(client):
    resp = get(client, start_date="2030-01-01", end_date="2030-01-02", hubs="HB_NORTH", price_type="day_ahead")
    assert resp.status_code == 200
    assert resp.json == {"timestamps": [], "data": [{"hub": "HB_NORTH", "prices": []}]}


# --- ancillary services: a generated data set with ECRS from mid-2023 -------------------


@pytest.fixture(scope="module")
def as_client(tmp_path_factory):
    root = tmp_path_factory.mktemp("as")
    (root / "flattened").mkdir()
    hours = np.arange(np.datetime64("2023-06-09T05:00"), np.datetime64("2023-06-11T05:00"), np.timedelta64(1, "h"))
    n = len(hours)
    ecrs = [None] * 24 + [float(h) for h in range(24)]  # ECRS starts 2023-06-10
    table = pa.table(
        {
            "datetime_ts": pa.array(hours.astype("datetime64[ms]"), type=pa.timestamp("ms", tz="UTC")),
            "ECRS": pa.array(ecrs, type=pa.float64()),
            "NSPIN": np.full(n, 2.5),
            "REGDN": np.full(n, 1.25),
            "REGUP": np.full(n, 3.0),
            "RRS": np.full(n, 4.75),
        }
    )
    pq.write_table(table, root / "flattened" / "AS_prices_2023.parquet")
    return testing.TestClient(create_app(load_store(root)))


def test_ancillary_series_names_and_order(as_client):
    body = get(as_client, start_date="2023-06-10", end_date="2023-06-10", price_type="as").json
    assert [s["hub"] for s in body["data"]] == ["ECRS", "NSPIN", "REGDN", "REGUP", "RRS"]
    assert body["data"][0]["prices"] == [float(h) for h in range(24)]
    assert body["data"][2]["prices"] == [1.25] * 24


def test_ancillary_only_products_with_data_in_range(as_client):
    body = get(as_client, start_date="2023-06-09", end_date="2023-06-09", price_type="ancillary_services").json
    assert [s["hub"] for s in body["data"]] == ["NSPIN", "REGDN", "REGUP", "RRS"]


def test_ancillary_products_requested(as_client):
    body = get(as_client, start_date="2023-06-09", end_date="2023-06-09", price_type="as", hubs="RRS,AS_ECRS").json
    assert [s["hub"] for s in body["data"]] == ["RRS", "ECRS"]
    assert body["data"][1]["prices"] == [None] * 24
    resp = get(as_client, start_date="2023-06-09", end_date="2023-06-09", price_type="as", hubs="SPIN")
    assert resp.status_code == 400 and "SPIN" in resp.json["error"]


# --- errors ------------------------------------------------------------------------------


def assert_error(resp, status, *words):
    assert resp.status_code == status, resp.text
    assert list(resp.json) == ["error", "details"]
    assert resp.json["details"]
    for word in words:
        assert word in resp.json["error"] + resp.json["details"]


def test_unknown_settlement_point_is_named(client):
    resp = get(client, start_date="2021-02-17", end_date="2021-02-17", hubs="HB_NORTH,HB_NOPE", price_type="da")
    assert_error(resp, 400, "HB_NOPE", "/api/available_hubs")


def test_end_before_start(client):
    resp = get(client, start_date="2021-02-18", end_date="2021-02-17", hubs="HB_NORTH", price_type="da")
    assert_error(resp, 400, "end_date")


def test_range_over_maximum(client):
    resp = get(client, start_date="2000-01-01", end_date="2021-01-01", hubs="HB_NORTH", price_type="da")
    assert_error(resp, 400, "1000 days")


@pytest.mark.parametrize(
    "params,word",
    [
        ({"start_date": "yesterday", "end_date": "2021-02-17", "hubs": "HB_NORTH", "price_type": "da"}, "start_date"),
        ({"start_date": "2021-02-17", "end_date": "2021-13-45", "hubs": "HB_NORTH", "price_type": "da"}, "end_date"),
        ({"start_date": "2021-02-17T00:00:00", "end_date": "2021-02-17", "hubs": "HB_NORTH", "price_type": "da"}, "offset"),
        ({"end_date": "2021-02-17", "hubs": "HB_NORTH", "price_type": "da"}, "start_date"),
        ({"start_date": "2021-02-17", "end_date": "2021-02-17", "price_type": "da"}, "hubs"),
        ({"start_date": "2021-02-17", "end_date": "2021-02-17", "hubs": "HB_NORTH"}, "price_type"),
        ({"start_date": "2021-02-17", "end_date": "2021-02-17", "hubs": "HB_NORTH", "price_type": "spot"}, "spot"),
        ({"start_date": "2021-02-17", "end_date": "2021-02-17", "hubs": "HB_NORTH", "price_type": "da", "resolution": "15min"}, "real_time"),
        ({"start_date": "2021-02-17", "end_date": "2021-02-17", "hubs": "HB_NORTH", "price_type": "rt", "resolution": "5min"}, "5min"),
        ({"start_date": "2021-02-17", "end_date": "2021-02-17", "hubs": "HB_NORTH", "price_type": "da", "tz": "Mars/Olympus"}, "tz"),
        ({"start_date": "9999-12-30", "end_date": "9999-12-31", "hubs": "HB_NORTH", "price_type": "da"}, "out of range"),
        ({"start_date": "99999-01-01", "end_date": "2021-02-17", "hubs": "HB_NORTH", "price_type": "da"}, "start_date"),
    ],
)
def test_bad_parameters_are_400(client, params, word):
    assert_error(client.simulate_get("/api/prices", params=params), 400, word)


def test_unknown_path_is_404(client):
    assert_error(client.simulate_get("/api/nope"), 404, "/api/prices")


def test_wrong_method_is_405(client):
    resp = client.simulate_delete("/api/prices")
    assert_error(resp, 405, "GET, POST")
    assert_error(client.simulate_post("/api/health"), 405, "GET")


def test_internal_fault_is_500_without_leaking(utc_store, monkeypatch, caplog):
    from ercot_fast.render import json as json_render

    def broken(*args):
        raise RuntimeError("secret internals")

    monkeypatch.setattr(json_render, "render_json", broken)
    client = testing.TestClient(create_app(utc_store))
    resp = get(client, start_date="2021-02-17", end_date="2021-02-17", hubs="HB_NORTH", price_type="da")
    assert_error(resp, 500)
    assert "secret" not in resp.text
    assert "secret internals" in caplog.text


def test_cors(client):
    origin = {"Origin": "https://dash.example"}
    query = "start_date=2021-02-17&end_date=2021-02-17&hubs=HB_NORTH&price_type=da"
    resp = client.simulate_get("/api/prices", query_string=query, headers=origin)
    assert resp.headers["access-control-allow-origin"] == "*"
    bad = client.simulate_get("/api/prices", query_string="start_date=x", headers=origin)
    assert bad.status_code == 400 and bad.headers["access-control-allow-origin"] == "*"
    preflight = client.simulate_options(
        "/api/prices",
        headers={"Origin": "https://dash.example", "Access-Control-Request-Method": "GET"},
    )
    assert preflight.status_code == 200
    assert "GET" in preflight.headers["access-control-allow-methods"]


# --- /api/health and /api/available_hubs ------------------------------------------------


def test_health(client):
    resp = client.simulate_get("/api/health")
    assert resp.status_code == 200
    body = resp.json
    assert list(body)[:3] == ["status", "service", "timestamp"]
    assert body["status"] == "healthy" and body["service"] == "ercot_price_service"
    stamp = dt.datetime.strptime(body["timestamp"], ISO_Z).replace(tzinfo=UTC)
    assert abs((dt.datetime.now(UTC) - stamp).total_seconds()) < 60
    assert "data" not in body  # real data is not labelled synthetic


def test_health_without_data_is_503(tmp_path):
    resp = testing.TestClient(create_app(load_store(tmp_path))).simulate_get("/api/health")
    assert resp.status_code == 503
    assert resp.json["status"] != "healthy"


def test_available_hubs_from_the_data(client, da_prices):
    resp = client.simulate_get("/api/available_hubs")
    points = {p for _, p in da_prices}
    hubs = sorted(p for p in points if p.startswith("HB_"))
    zones = sorted(p for p in points if p.startswith("LZ_"))
    assert resp.json == hubs + zones


def test_no_request_reads_files(utc_dir, monkeypatch):
    """Once loaded, the app answers from memory: file access would raise."""
    import builtins

    import pyarrow.parquet

    app_client = testing.TestClient(create_app(load_store(utc_dir)))

    def forbidden(*args, **kwargs):
        raise AssertionError("a request opened a file")

    monkeypatch.setattr(builtins, "open", forbidden)
    monkeypatch.setattr(pyarrow.parquet, "read_table", forbidden)
    resp = get(app_client, start_date="2019-01-01", end_date="2021-07-24", hubs="HB_NORTH", price_type="combined")
    assert resp.status_code == 200
    assert json.loads(resp.content)["timestamps"][0] == "2019-01-01T06:00:00Z"
