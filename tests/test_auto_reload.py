"""The service keeps itself current: --reload-interval notices price files
added, changed or removed (in a local folder or an s3:// prefix) and reloads
them gaplessly, the HTTP workers and the Flight child together; an API caller
with a key can ask for a reload (POST /api/admin/reload, the Flight action
reload). /metrics and the log say when."""
import json
import shutil
import urllib.request

import pyarrow.flight as flight
import pytest

from ercot_fast.ingest import ingest
from ercot_fast.datadir import open_data_dir
from object_store import S3Server
from serving import Served, fetch, wait_until

DA_HEADER = "DeliveryDate,HourEnding,SettlementPoint,SettlementPointPrice,DSTFlag\n"
NEW_DAY = "/api/prices?start_date=2021-03-01&end_date=2021-03-01&hubs=HB_NORTH&price_type=da"
KEY = "reload-key-0123456789abcdef"


def day_ahead_csv(folder, price):
    """One market day (2021-03-01) of HB_NORTH day-ahead prices, all ``price``, + the hour."""
    path = folder / f"da-{price}.csv"
    path.write_text(DA_HEADER + "".join(f"03/01/2021,{h:02d}:00,HB_NORTH,{price + h},N\n" for h in range(1, 25)))
    return path


def prices_of(served, path=NEW_DAY, headers=None):
    status, _, body = fetch(served.base + path, headers=headers)
    assert status == 200, body
    [series] = json.loads(body)["data"] or [{"prices": []}]
    return series["prices"]


def flight_prices(served):
    ticket = {"start_date": "2021-03-01", "end_date": "2021-03-01", "hubs": ["HB_NORTH"], "price_type": "da"}
    with flight.connect(served.flight_location) as client:
        options = flight.FlightCallOptions(headers=[(b"authorization", f"Bearer {KEY}".encode())])
        return client.do_get(flight.Ticket(json.dumps(ticket).encode()), options=options).read_all().column("price").to_pylist()


def metric(served, name):
    _, _, body = fetch(served.base + "/metrics")
    return sum(float(line.rsplit(" ", 1)[1]) for line in body.decode().splitlines() if line.startswith(name))


def follow_the_data_dir(served, data_dir, scratch):
    """Add, change and remove a price file under ``data_dir``; each is served within a few intervals."""
    assert served.wait_ready()[0] == 200
    assert prices_of(served) == []
    ingest([day_ahead_csv(scratch, 100)], data_dir)  # added
    wait_until(lambda: prices_of(served) == [100.0 + h for h in range(1, 25)], "the added file was not served", timeout=60)
    wait_until(lambda: flight_prices(served) == [100.0 + h for h in range(1, 25)], "Flight did not follow", timeout=30)
    ingest([day_ahead_csv(scratch, 200)], data_dir)  # changed: ERCOT re-published the day
    wait_until(lambda: prices_of(served)[0] == 201.0, "the changed file was not served", timeout=60)
    [partition] = [e.relative for e in data_dir.entries() if "2021_03" in e.relative]
    data_dir.delete(partition)  # removed
    wait_until(lambda: prices_of(served) == [], "the removed file is still served", timeout=60)
    assert metric(served, 'ercot_fast_reloads_total{outcome="published"}') >= 3
    assert metric(served, 'ercot_fast_data_dir_checks_total{result="changed"}') >= 3
    wait_until(lambda: metric(served, 'ercot_fast_data_dir_checks_total{result="unchanged"}') >= 1, "no unchanged check")
    assert metric(served, "ercot_fast_store_published_timestamp_seconds") > 1.7e9


def test_a_local_data_dir_is_followed(fixture_utc_dir, tmp_path):
    shutil.copytree(fixture_utc_dir, tmp_path / "data")
    served = Served(["--data-dir", str(tmp_path / "data"), "--workers", "2", "--reload-interval", "0.5"], env={})
    try:
        follow_the_data_dir(served, open_data_dir(tmp_path / "data"), tmp_path)
    finally:
        output = served.stop()
    assert "were added, changed or removed: reloading" in output
    assert "Traceback" not in output


def test_an_s3_data_dir_is_followed(fixture_utc_dir, tmp_path):
    with S3Server() as s3:
        s3.bucket("prices")
        s3.upload(fixture_utc_dir, "prices/live")
        served = Served(["--data-dir", "s3://prices/live", "--s3-endpoint", s3.endpoint, "--workers", "1",
                         "--reload-interval", "0.5"], env=s3.env)
        try:
            with pytest.MonkeyPatch.context() as patch:
                for name, value in s3.env.items():
                    patch.setenv(name, value)
                follow_the_data_dir(served, open_data_dir("s3://prices/live", s3.endpoint), tmp_path)
        finally:
            output = served.stop()
    assert "Traceback" not in output


def post(url, headers=None):
    request = urllib.request.Request(url, method="POST", data=b"", headers=headers or {})
    try:
        with urllib.request.urlopen(request, timeout=10) as resp:
            return resp.status, json.loads(resp.read())
    except urllib.error.HTTPError as err:
        return err.code, json.loads(err.read())


def test_a_caller_with_a_key_asks_for_a_reload_over_http_and_flight(fixture_utc_dir, tmp_path):
    shutil.copytree(fixture_utc_dir, tmp_path / "data")
    served = Served(["--data-dir", str(tmp_path / "data"), "--workers", "1"], env={"API_KEYS": f"ops:{KEY}"})
    auth = {"X-API-Key": KEY}
    try:
        assert served.wait_ready()[0] == 200
        ingest([day_ahead_csv(tmp_path, 100)], tmp_path / "data")
        assert post(served.base + "/api/admin/reload")[0] == 401  # no key
        assert prices_of(served, headers=auth) == []  # nothing polls: not served yet
        status, body = post(served.base + "/api/admin/reload", auth)
        assert status == 202 and body["status"] == "reload requested"
        wait_until(lambda: prices_of(served, headers=auth)[:1] == [101.0], "the reload over HTTP did not happen")
        ingest([day_ahead_csv(tmp_path, 300)], tmp_path / "data")
        with flight.connect(served.flight_location) as client:
            with pytest.raises(flight.FlightUnauthenticatedError):
                list(client.do_action(flight.Action("reload", b"")))
            options = flight.FlightCallOptions(headers=[(b"authorization", f"Bearer {KEY}".encode())])
            [result] = client.do_action(flight.Action("reload", b""), options=options)
            assert json.loads(result.body.to_pybytes())["status"] == "reload requested"
        wait_until(lambda: flight_prices(served)[:1] == [301.0], "the reload over Flight did not happen")
        for protocol in ("http", "flight"):  # each process writes its counts once a second
            wait_until(lambda: metric(served, f'ercot_fast_reload_requests_total{{protocol="{protocol}"}}') == 1,
                       f"the reload over {protocol} was not counted")
    finally:
        output = served.stop()
    assert "reload requested by HTTP (API key ops" in output and "reload requested by Flight" in output


def test_an_open_service_refuses_reloads_over_http(fixture_utc_dir):
    served = Served(["--data-dir", str(fixture_utc_dir), "--workers", "1"], env={})
    try:
        assert served.wait_ready()[0] == 200
        status, body = post(served.base + "/api/admin/reload")
        assert status == 403 and "need API keys" in body["error"] and "SIGHUP" in body["details"]
    finally:
        served.stop()
