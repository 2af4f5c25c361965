"""The access log (one line per HTTP request, both paths, text or JSON) and
the JSON log format, in-process and through `ercot-fast serve`."""
import json
import os
import re

import pyarrow.flight as flight
from falcon import testing

from ercot_fast import config, logs
from ercot_fast.api import observe
from ercot_fast.api.app import ROUTES, create_app
from ercot_fast.api.fastpath import ANSWERED_BY, FAST_PATH
from serving import Served, fetch

TILE = "start_date=2021-02-10&end_date=2021-02-16&hubs=HB_NORTH,HB_WEST&price_type=day_ahead"
TEXT_LINE = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z (GET|POST|HEAD|-) (\S+) (\d{3}) (\d+|-) (\d+)us (\S+) (\S+)$")


def logged(store, log_format, requests):
    """The access log lines of ``requests`` ((method, path, query)) answered in-process."""
    read, write = os.pipe()
    seen = []

    def record(app):  # inside the access log: which path answered
        def call(environ, start_response):
            body = app(environ, start_response)
            seen.append(environ.get(ANSWERED_BY))
            return body

        return call

    client = testing.TestClient(create_app(store, layers=[observe.layer(ROUTES, log_format, fd=write), record]))
    for method, path, query in requests:
        client.simulate_request(method, path, query_string=query, remote_addr="10.1.2.3")
    observe.flush()
    logs.flush_lines()
    os.close(write)
    with os.fdopen(read) as lines:
        return lines.read().splitlines(), seen


def test_text_lines_for_both_paths_and_unknown_routes(utc_store):
    lines, paths = logged(utc_store, "text", [("GET", "/api/prices", TILE), ("GET", "/api/prices", TILE),
                                               ("GET", "/no/such\nthing", ""), ("POST", "/api/health", "")])
    assert len(lines) == 4 and FAST_PATH in paths  # the repeated poll was answered by the fast path, and logged
    fields = [TEXT_LINE.match(line).groups() for line in lines]
    assert fields[0][:4] == ("GET", "/api/prices", "200", fields[1][3]) and int(fields[0][3]) > 1000
    assert fields[1][:3] == ("GET", "/api/prices", "200") and fields[1][5:] == ("10.1.2.3", "-")
    assert fields[2][:3] == ("GET", "-", "404")  # a raw path is never logged (no line breaks forged into the log)
    assert fields[3][:3] == ("POST", "/api/health", "405")


def test_json_lines(utc_store):
    lines, _ = logged(utc_store, "json", [("GET", "/api/prices", TILE), ("GET", "/api/prices", "price_type=nope")])
    first, second = map(json.loads, lines)
    assert set(first) == {"time", "method", "route", "status", "bytes", "microseconds", "client", "api_key"}
    assert first["api_key"] is None
    assert (first["status"], second["status"], first["route"], first["client"]) == (200, 400, "/api/prices", "10.1.2.3")
    assert int(first["bytes"]) > 1000 and first["microseconds"] >= 0


def test_log_formats_are_the_configs():
    assert config.LOG_FORMATS == logs.FORMATS


def test_serve_logs_json_and_the_access_log_unless_it_is_off(utc_dir):
    for args, want_access in ((["--log-format", "json"], True), (["--access-log", "off"], False)):
        served = Served(["--data-dir", str(utc_dir), "--workers", "1", "--worker-class", "sync", *args], {})
        try:
            served.wait_ready()
            status, _, _ = fetch(f"{served.base}/api/prices?{TILE}")
            assert status == 200
            with flight.connect(served.flight_location) as client:
                list(client.list_actions())  # logged by the Flight child, which writes its last lines as it stops
        finally:
            log = served.stop()
        lines = log.splitlines()
        access = [line for line in lines if "/api/prices" in line and "200" in line]
        assert bool(access) == want_access, log
        assert any("ListActions" in line for line in lines) == want_access, log
        if want_access:
            records = [json.loads(line) for line in lines if line.startswith("{")]
            assert len(records) == len(lines), "a line that is not JSON"
            assert any(r.get("route") == "/api/prices" and r.get("status") == 200 for r in records)
            assert any(r.get("logger") == "gunicorn.error" for r in records)  # gunicorn's own lines too


def test_flight_calls_are_logged(utc_store):
    import pyarrow as pa
    import pyarrow.flight as flight

    from ercot_fast.access.keys import ApiKeys
    from ercot_fast.flight.seam import Seam
    from ercot_fast.flight.server import PriceFlightServer

    read, write = os.pipe()
    server = PriceFlightServer(utc_store, "grpc://127.0.0.1:0", 1000,
                               middleware={Seam.NAME: Seam(ApiKeys, log_format="json", fd=write)})
    try:
        with flight.connect(f"grpc://127.0.0.1:{server.port}") as client:
            client.do_get(flight.Ticket(b'{"dataset": "day_ahead", "hubs": ["HB_NORTH"]}')).read_all()
            try:
                client.do_get(flight.Ticket(b"not json")).read_all()
            except pa.ArrowInvalid:
                pass
            list(client.list_actions())
    finally:
        server.shutdown()
    logs.flush_lines()
    os.close(write)
    with os.fdopen(read) as lines:
        records = [json.loads(line) for line in lines.read().splitlines()]
    assert [(r["method"], r["route"], r["status"]) for r in records] == [
        ("FLIGHT", "DoGet", "OK"), ("FLIGHT", "DoGet", "INVALID_ARGUMENT"), ("FLIGHT", "ListActions", "OK")]


def test_nothing_to_observe_is_no_layer():
    """--access-log off --metrics off: the hot path passes no observation code at all."""
    def app(environ, start_response):
        return []

    assert observe.layer(ROUTES)(app) is app
    assert observe.layer(ROUTES, "text")(app) is not app
