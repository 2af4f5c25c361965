"""format=/Accept (CSV, Arrow, Parquet), compression (Accept-Encoding),
relative times with a fixed clock, and the same shaping over Flight and the
Python client: every format round-trips to the numbers of the JSON answer."""
import gzip
import io
import json

import brotli
import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.flight as flight
import pyarrow.parquet as pq
import pytest
import zstandard
from falcon import testing

from ercot_fast import timeutil
from ercot_fast.api.app import create_app
from ercot_fast.api.encoding import negotiate
from ercot_fast.client import PriceClient
from ercot_fast.flight import server as ercot_flight
from reference_layout import utc_ms

DAY = {"start_date": "2020-11-01", "end_date": "2020-11-01", "hubs": "HB_NORTH,HB_WEST", "price_type": "da"}
URI_WEEK = {"start_date": "2021-02-14", "end_date": "2021-02-20", "hubs": "HB_NORTH,HB_WEST,LZ_HOUSTON", "price_type": "da"}
FIXED_NOW = utc_ms(2021, 2, 17, 18, 7)  # 12:07 Central on Winter Storm Uri's worst day


def get(client, params, headers=None):
    resp = client.simulate_get("/api/prices", params=params, headers=headers or {})
    assert resp.status_code == 200, resp.text
    return resp


def json_frame(body, tz="UTC"):
    """The JSON answer as a wide DataFrame (instants as UTC Timestamps)."""
    index = pd.to_datetime(body["timestamps"], utc=True)
    return pd.DataFrame({s["hub"]: pd.array(s["prices"], dtype="Float64") for s in body["data"]}, index=index)


# --- CSV --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("tz", ["UTC", "America/Chicago"])
def test_csv_wide_round_trips_through_pandas(client, tz):
    params = {**DAY, "tz": tz}
    want = json_frame(get(client, params).json)
    resp = get(client, {**params, "format": "csv"})
    assert resp.headers["content-type"] == "text/csv; charset=utf-8"
    assert resp.headers["content-disposition"] == 'attachment; filename="ercot_day_ahead_2020-11-01_2020-11-01.csv"'
    lines = resp.text.splitlines()
    assert lines[0] == "datetime,HB_NORTH,HB_WEST" and len(lines) == 26  # both repeated-hour prices
    frame = pd.read_csv(io.StringIO(resp.text), index_col="datetime")
    stamps = pd.to_datetime(frame.index, utc=True)  # RFC 3339, each with its own offset
    assert list(stamps) == list(want.index)
    assert frame.to_numpy().tolist() == want.astype(float).to_numpy().tolist()
    if tz == "UTC":
        assert lines[1].startswith("2020-11-01T05:00:00Z,")
    else:
        assert [line[:25] for line in lines[2:4]] == ["2020-11-01T01:00:00-05:00", "2020-11-01T01:00:00-06:00"]


def test_csv_long_layout_and_empty_fields_for_nulls(client):
    # real-time prices start on 1 February: RT_HB_NORTH is null on 31 January
    params = {"start_date": "2021-01-31", "end_date": "2021-02-01", "price_type": "combined", "hubs": "HB_NORTH"}
    body = get(client, params).json
    resp = get(client, {**params, "format": "csv", "layout": "long"})
    frame = pd.read_csv(io.StringIO(resp.text))
    assert list(frame.columns) == ["datetime", "hub", "price"]
    assert list(frame["hub"].unique()) == [s["hub"] for s in body["data"]]
    for series in body["data"]:
        got = frame.loc[frame["hub"] == series["hub"], "price"].tolist()
        assert [None if np.isnan(v) else v for v in got] == series["prices"]
    wide = get(client, {**params, "format": "csv"}).text.splitlines()
    assert wide[0] == "datetime,DA_HB_NORTH,RT_HB_NORTH" and wide[1].endswith(",")  # a missing price is an empty field
    assert sum(line.endswith(",") for line in wide[1:]) == 24


def test_csv_numbers_are_shortest_round_trip(client):
    resp = get(client, {**DAY, "format": "csv", "aggregate": "daily"})
    north, west = (s["prices"][0] for s in get(client, {**DAY, "aggregate": "daily"}).json["data"])
    # the daily means of 25 cent prices: exact, printed in their shortest form (Python's repr)
    assert resp.text.splitlines()[1] == f"2020-11-01T05:00:00Z,{north!r},{west!r}"
    assert north == 29.974 and len(repr(west)) <= 8


def test_accept_header_chooses_the_format(client):
    assert get(client, DAY, {"Accept": "text/csv"}).headers["content-type"].startswith("text/csv")
    assert get(client, DAY, {"Accept": "application/vnd.apache.parquet"}).content[:4] == b"PAR1"
    browser = "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8"
    assert get(client, DAY, {"Accept": browser}).headers["content-type"] == "application/json"
    assert get(client, DAY, {"Accept": "text/csv;q=0.5, application/json"}).headers["content-type"] == "application/json"
    # format= wins over Accept
    assert get(client, {**DAY, "format": "json"}, {"Accept": "text/csv"}).headers["content-type"] == "application/json"


def test_bad_format_or_layout_is_a_400(client):
    for params, word in (({"format": "xml"}, "json, csv, arrow, parquet"), ({"layout": "long"}, "format=csv"),
                         ({"format": "csv", "layout": "tall"}, "layout=wide")):
        resp = client.simulate_get("/api/prices", params={**DAY, **params})
        assert resp.status_code == 400 and word in resp.json["details"], resp.text


# --- Arrow and Parquet -----------------------------------------------------------------------------


@pytest.mark.parametrize("fmt", ["arrow", "parquet"])
@pytest.mark.parametrize("layout", ["long", "wide"])
def test_arrow_and_parquet_in_the_flight_schemas(client, location, fmt, layout):
    resp = get(client, {**URI_WEEK, "format": fmt, "layout": layout, "aggregate": "daily", "block": "onpeak"})
    data = resp.content
    table = pa.ipc.open_stream(data).read_all() if fmt == "arrow" else pq.read_table(io.BytesIO(data))
    extension = {"arrow": "arrows", "parquet": "parquet"}[fmt]
    assert resp.headers["content-disposition"].endswith(f'_2021-02-14_2021-02-20_5x16_daily_mean.{extension}"')
    with flight.connect(location) as fl:
        ticket = {**URI_WEEK, "hubs": URI_WEEK["hubs"].split(","), "layout": layout, "aggregate": "daily", "block": "onpeak"}
        over_flight = fl.do_get(flight.Ticket(json.dumps(ticket).encode())).read_all()
    assert table.schema == over_flight.schema and table.equals(over_flight)
    body = get(client, {**URI_WEEK, "aggregate": "daily", "block": "onpeak"}).json  # the same numbers as JSON
    stamps = [t.strftime("%Y-%m-%dT%H:%M:%SZ") for t in table.column("datetime").to_pylist()]
    if layout == "wide":
        assert stamps == body["timestamps"]
        assert {s["hub"]: s["prices"] for s in body["data"]} == {n: table.column(n).to_pylist() for n in table.column_names[1:]}
    else:
        hubs, prices = table.column("hub").to_pylist(), table.column("price").to_pylist()
        want = [(t, s["hub"], p) for s in body["data"] for t, p in zip(body["timestamps"], s["prices"])]
        assert list(zip(stamps, hubs, prices)) == want


# --- ETags and the cache per representation ---------------------------------------------------------


def test_etag_and_cache_per_format(client):
    tags = {fmt: get(client, {**DAY, "format": fmt}).headers["etag"] for fmt in ("json", "csv", "arrow", "parquet")}
    assert len(set(tags.values())) == 4
    for fmt, tag in tags.items():
        again = client.simulate_get("/api/prices", params={**DAY, "format": fmt}, headers={"If-None-Match": tag})
        assert again.status_code == 304 and "content-type" not in again.headers
    long = get(client, {**DAY, "format": "csv", "layout": "long"}).headers["etag"]
    assert long != tags["csv"]


def test_repeated_downloads_render_once(utc_store, monkeypatch):
    from ercot_fast.render import formats

    calls = []
    original = formats.render_csv
    monkeypatch.setattr(formats, "render_csv", lambda *a: calls.append(a) or original(*a))
    client = testing.TestClient(create_app(utc_store))
    bodies = {get(client, {**URI_WEEK, "format": "csv"}, {"Accept-Encoding": coding}).content for coding in ("", "gzip", "gzip", "")}
    assert len(calls) == 1 and len(bodies) == 2


# --- compression --------------------------------------------------------------------------------------

DECODE = {"gzip": gzip.decompress, "br": brotli.decompress, "zstd": lambda b: zstandard.ZstdDecompressor().decompressobj().decompress(b)}


@pytest.mark.parametrize("coding", ["gzip", "br", "zstd"])
@pytest.mark.parametrize("fmt", ["json", "csv"])
def test_compressed_bodies_decode_to_the_plain_one(client, coding, fmt):
    plain = get(client, {**URI_WEEK, "format": fmt})
    packed = get(client, {**URI_WEEK, "format": fmt}, {"Accept-Encoding": coding})
    assert packed.headers["content-encoding"] == coding and packed.headers["vary"] == "Accept, Accept-Encoding"
    assert DECODE[coding](packed.content) == plain.content and len(packed.content) < len(plain.content) / 2
    assert "content-encoding" not in plain.headers and packed.headers["etag"] != plain.headers["etag"]


def test_small_bodies_and_binary_formats_are_not_compressed(client):
    small = get(client, {**DAY, "hubs": "HB_NORTH", "aggregate": "daily"}, {"Accept-Encoding": "gzip"})
    assert "content-encoding" not in small.headers and small.json["data"][0]["hub"] == "HB_NORTH"
    parquet = get(client, {**URI_WEEK, "format": "parquet"}, {"Accept-Encoding": "gzip"})
    assert "content-encoding" not in parquet.headers


def test_the_fast_path_answers_compressed_polls_as_falcon_does(utc_store):
    client = testing.TestClient(create_app(utc_store))
    headers = {"Accept-Encoding": "gzip, deflate, br"}
    first, again = (get(client, URI_WEEK, headers) for _ in range(2))
    assert first.content == again.content and sorted(first.headers.items()) == sorted(again.headers.items())
    assert first.headers["content-encoding"] == "br"
    other = get(client, URI_WEEK, {"Accept-Encoding": "gzip"})  # another header: another answer
    assert other.headers["content-encoding"] == "gzip" and gzip.decompress(other.content) == brotli.decompress(first.content)


@pytest.mark.parametrize(
    "header, coding",
    [(None, None), ("gzip", "gzip"), ("gzip, deflate, br, zstd", "zstd"), ("gzip;q=1, br;q=0.5", "gzip"),
     ("identity", None), ("*", "zstd"), ("*;q=0", None), ("zstd;q=0, *", "br"), ("x-gzip", "gzip"), ("gzip;q=x", None)],
)
def test_accept_encoding_negotiation(header, coding):
    assert negotiate(header) == coding


# --- relative times, with a fixed clock --------------------------------------------------------------


@pytest.fixture
def clock(monkeypatch):
    now = {"ms": FIXED_NOW}
    monkeypatch.setattr(timeutil, "now_ms", lambda: now["ms"])
    return now


def test_relative_bounds_resolve_on_the_interval_grid(client, clock):
    last_day = get(client, {**DAY, "start_date": "now-24h", "end_date": "now"}).json
    # 2021-02-16T18:07Z rounds up to the next hour, 2021-02-17T18:07Z down
    assert last_day["timestamps"][0] == "2021-02-16T19:00:00Z" and last_day["timestamps"][-1] == "2021-02-17T18:00:00Z"
    assert len(last_day["timestamps"]) == 24
    fixed = get(client, {**DAY, "start_date": "2021-02-16T19:00:00Z", "end_date": "2021-02-17T18:00:00Z"}).json
    assert last_day == fixed
    quarter = get(client, {**DAY, "price_type": "rt", "resolution": "15min", "start_date": "now-1h", "end_date": "now"}).json
    assert quarter["timestamps"] == ["2021-02-17T17:15:00Z", "2021-02-17T17:30:00Z", "2021-02-17T17:45:00Z", "2021-02-17T18:00:00Z"]


@pytest.mark.parametrize(
    "start, end, first, last",
    [
        ("today", "today", "2021-02-17T06:00:00Z", "2021-02-18T05:00:00Z"),
        ("yesterday", "yesterday", "2021-02-16T06:00:00Z", "2021-02-17T05:00:00Z"),
        ("now-7d", "now-6d", "2021-02-10T19:00:00Z", "2021-02-11T18:00:00Z"),
        ("now-1M", "now-1M", None, None),  # 2021-01-17T12:07 Central: no instant on the hour grid
        ("now-1M", "now-1M+1h", None, None),
        ("now-1w", "now-1w", None, None),
        (str(utc_ms(2021, 2, 17, 6)), str(utc_ms(2021, 2, 17, 8)), "2021-02-17T06:00:00Z", "2021-02-17T08:00:00Z"),
    ],
)
def test_relative_and_epoch_forms(client, clock, start, end, first, last):
    resp = client.simulate_get("/api/prices", params={**DAY, "start_date": start, "end_date": end})
    if end == "now-1M+1h":  # not a form: the error lists the forms
        assert resp.status_code == 400 and "now-24h" in resp.json["details"]
        return
    assert resp.status_code == 200, resp.text
    stamps = resp.json["timestamps"]
    if first is None:
        assert stamps == []
    else:
        assert (stamps[0], stamps[-1]) == (first, last)


def test_now_minus_a_month_is_on_the_central_calendar(client, clock):
    clock["ms"] = utc_ms(2021, 3, 31, 17)  # 12:00 CDT on 31 March
    body = get(client, {**DAY, "start_date": "now-1M", "end_date": "now-1M"}).json  # 28 February, 12:00 CST
    assert body["timestamps"] == ["2021-02-28T18:00:00Z"]


def test_grafana_epoch_milliseconds_and_unencoded_plus(client, clock):
    grafana = get(client, {**DAY, "start_date": str(utc_ms(2021, 2, 17, 6)), "end_date": str(utc_ms(2021, 2, 18, 6) - 1)}).json
    assert grafana == get(client, {**DAY, "start_date": "2021-02-17", "end_date": "2021-02-17"}).json
    plus = client.simulate_get("/api/prices", query_string="start_date=now-2h&end_date=now 1h&hubs=HB_NORTH&price_type=da")
    assert plus.status_code == 200 and len(plus.json["timestamps"]) == 3


def test_relative_polls_hit_the_cache_until_the_next_interval(utc_store, clock, monkeypatch):
    from ercot_fast.render import json as json_render

    calls = []
    original = json_render.render_json
    monkeypatch.setattr(json_render, "render_json", lambda *a: calls.append(a) or original(*a))
    client = testing.TestClient(create_app(utc_store, max_age=60))
    poll = {**DAY, "start_date": "now-24h", "end_date": "now"}
    first = get(client, poll)
    clock["ms"] += 30_000
    second = get(client, poll)
    assert len(calls) == 1 and second.content == first.content
    # 12:07:30 Central: the next interval starts at 13:00, so at most the configured 60 s
    assert second.headers["cache-control"] == "public, max-age=60"
    clock["ms"] = utc_ms(2021, 2, 17, 18, 59, 40)
    near = get(client, poll)
    assert near.headers["cache-control"] == "public, max-age=20" and near.content == first.content
    clock["ms"] = utc_ms(2021, 2, 17, 19, 0, 1)
    moved = get(client, poll)
    assert len(calls) == 2 and moved.json["timestamps"][-1] == "2021-02-17T19:00:00Z"
    assert moved.headers["etag"] != first.headers["etag"]
    fixed = get(client, DAY)
    assert fixed.headers["cache-control"] == "public, max-age=60"


# --- Flight tickets and the Python client --------------------------------------------------------------


@pytest.fixture(scope="module")
def location(utc_store):
    served = ercot_flight.PriceFlightServer(utc_store, "grpc://127.0.0.1:0", 1000)
    try:
        yield f"grpc://127.0.0.1:{served.port}"
    finally:
        served.shutdown()


def test_client_aggregates_as_http_does(utc_store, location):
    client = testing.TestClient(create_app(utc_store, max_range_days=2000))
    with PriceClient(location) as prices:
        frame = prices.dataframe("2020-01-01", "2020-12-31", ["HB_NORTH"], aggregate="monthly", block="onpeak", layout="wide")
        whole = prices.dataset_table("day_ahead", ["HB_NORTH"], aggregate="yearly", stat="max", layout="wide")
        epoch = prices.table(utc_ms(2021, 2, 17, 6), utc_ms(2021, 2, 17, 7), ["HB_NORTH"])
    body = get(client, {"start_date": "2020-01-01", "end_date": "2020-12-31", "hubs": "HB_NORTH", "price_type": "da",
                        "aggregate": "monthly", "block": "onpeak"}).json
    assert frame["HB_NORTH"].tolist() == body["data"][0]["prices"]
    years = get(client, {"start_date": "2019-01-01", "end_date": "2021-12-31", "hubs": "HB_NORTH", "price_type": "da",
                         "aggregate": "yearly", "stat": "max"}).json
    assert whole.column("HB_NORTH").to_pylist() == years["data"][0]["prices"]
    assert epoch.num_rows == 2


def test_bad_shaping_in_a_ticket_is_invalid_argument(location):
    with flight.connect(location) as fl:
        with pytest.raises(pa.ArrowInvalid, match="unknown aggregate 'hourlyish'"):
            fl.do_get(flight.Ticket(json.dumps({"dataset": "day_ahead", "aggregate": "hourlyish"}).encode())).read_all()


@pytest.mark.parametrize(
    "start, end, word",
    [
        ("-9999999999999999", "0", "start_date is out of range"),
        ("0", "9999999999999999", "end_date is out of range"),
        ("now-999999d", "now", "start_date is out of range"),
        ("now-999999y", "now", "from now is out of range"),
        ("now-1q", "now", "now-24h"),  # not a unit: the error lists the forms
    ],
)
def test_bounds_out_of_range_are_400s(client, clock, start, end, word):
    resp = client.simulate_get("/api/prices", params={**DAY, "start_date": start, "end_date": end, "format": "csv"})
    assert resp.status_code == 400 and word in resp.json["error"] + resp.json["details"], resp.text


def test_blank_format_and_layout_are_the_defaults_and_now_is_any_case(client, clock):
    assert get(client, {**DAY, "format": "", "layout": " "}).headers["content-type"] == "application/json"
    assert get(client, {**DAY, "start_date": "NOW-1h", "end_date": "Now"}).json["timestamps"] == ["2021-02-17T18:00:00Z"]
