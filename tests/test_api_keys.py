"""API keys (``access.keys``, ``api.guard``, ``flight.seam``): parsing the
keys, HTTP 401s and what stays open, Flight's bearer header and basic-auth
handshake, and a real `ercot-fast serve` with a keys file re-read on SIGHUP,
``API_KEYS``, curl-style headers, ``PriceClient(api_key=)`` and ADBC."""
import json
import signal
import time

import pyarrow.flight as flight
import pytest
from falcon import testing

from ercot_fast.access import keys
from ercot_fast.access.keys import ApiKeys
from ercot_fast.api.app import create_app
from ercot_fast.api.guard import layer
from ercot_fast.client import PriceClient
from ercot_fast.flight.seam import Seam
from ercot_fast.flight.server import PriceFlightServer
from serving import Served, fetch, wait_until

DESK = "desk-a"
DESK_KEY = "k3y-of-desk-a-0123456789"
OTHER_KEY = "another-key-of-desk-b-987"
PRICES = "/api/prices?start_date=2021-02-15&end_date=2021-02-15&hubs=HB_NORTH&price_type=day_ahead"


def accepted(text=f"{DESK}:{DESK_KEY}\ndesk-b:{OTHER_KEY}\n"):
    return keys.load(env_text=None) if text is None else ApiKeys({n: keys.digest(k) for n, k in keys.parse(text, "f").items()})


# --- the keys ------------------------------------------------------------------------------------


def test_keys_file_lines_and_their_names(tmp_path):
    path = tmp_path / "keys"
    path.write_text(f"# the desks\n\n{DESK}:{DESK_KEY}\n  desk-b : {OTHER_KEY}  \n")
    api_keys = keys.load(path, f"ops:{'o' * 20},audit:{'a' * 20}")
    assert set(api_keys.digests) == {DESK, "desk-b", "ops", "audit"}
    assert api_keys.identify(DESK_KEY) == DESK and api_keys.identify(OTHER_KEY.encode()) == "desk-b"
    assert api_keys.identify("o" * 20) == "ops"
    assert api_keys.identify(DESK_KEY + "x") is None and api_keys.identify("") is None and api_keys.identify(None) is None
    assert DESK_KEY not in json.dumps(api_keys.digests)  # only digests are kept and published


@pytest.mark.parametrize("text, fault", [
    ("no-colon-here", "line 1: not name:key"),
    ("a:short", "fewer than 16 characters"),
    (f"a b:{'x' * 20}", "is not 1-64 letters"),
    (f"a:{'x' * 20}\na:{'y' * 20}", "line 2: the name 'a' is given twice"),
    (f"a:{'x' * 20}\nb:{'x' * 20}", "also another name's"),
    (f"a:{'x' * 10} {'y' * 10}", "or a space"),
])
def test_bad_keys_say_which_line_and_what_to_fix(tmp_path, text, fault):
    path = tmp_path / "keys"
    path.write_text(text)
    with pytest.raises(ValueError, match=fault) as raised:
        keys.load(path)
    assert str(path) in str(raised.value)


def test_a_missing_keys_file_and_a_name_in_both_places(tmp_path):
    with pytest.raises(ValueError, match="cannot be read"):
        keys.load(tmp_path / "absent")
    path = tmp_path / "keys"
    path.write_text(f"{DESK}:{DESK_KEY}\n")
    with pytest.raises(ValueError, match="API_KEYS: the name 'desk-a' is also in"):
        keys.load(path, f"{DESK}:{OTHER_KEY}")


def test_the_key_a_request_carries():
    assert keys.presented("  abc ", "Bearer zzz") == "abc"
    assert keys.presented(None, "Bearer  zzz ") == "zzz" and keys.presented(None, "bearer zzz") == "zzz"
    assert keys.presented(None, "Basic dXNlcjpwYXNz") is None and keys.presented(None, "Bearer") is None


# --- HTTP in-process -----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def guarded(utc_store):
    return testing.TestClient(create_app(utc_store, layers=[layer(accepted(), None, metrics_key="m" * 20)]))


def test_http_without_a_key_is_a_json_401_that_says_how(guarded):
    response = guarded.simulate_get("/api/prices", query_string=PRICES.split("?")[1])
    assert response.status_code == 401
    assert response.json["error"] == "API key required" and "X-API-Key" in response.json["details"]
    assert response.headers["www-authenticate"].startswith("Bearer")
    wrong = guarded.simulate_get("/api/available_hubs", headers={"X-API-Key": "not-a-key-of-ours-000"})
    assert wrong.status_code == 401 and wrong.json["error"] == "API key not accepted"


@pytest.mark.parametrize("headers", [{"X-API-Key": DESK_KEY}, {"Authorization": f"Bearer {DESK_KEY}"}])
def test_http_with_a_key_answers_as_without_keys(guarded, client, headers):
    path, query = PRICES.split("?")
    response = guarded.simulate_get(path, query_string=query, headers=headers)
    assert response.status_code == 200 and response.content == client.simulate_get(path, query_string=query).content
    assert guarded.simulate_get(path, query_string=query, headers=headers).status_code == 200  # the fast path too


def test_health_readiness_openapi_and_preflight_stay_open_metrics_needs_its_key(guarded):
    assert guarded.simulate_get("/api/health").status_code in (200, 503)
    assert guarded.simulate_get("/api/openapi.json").status_code == 200
    preflight = guarded.simulate_options("/api/prices", headers={
        "Origin": "https://dash.example", "Access-Control-Request-Method": "GET", "Access-Control-Request-Headers": "x-api-key"})
    assert preflight.status_code == 200 and "x-api-key" in preflight.headers["access-control-allow-headers"]
    # a refusal still carries CORS, so a browser can read why
    refused = guarded.simulate_get("/api/available_hubs", headers={"Origin": "https://dash.example"})
    assert refused.status_code == 401 and refused.headers["access-control-allow-origin"] == "*"
    assert guarded.simulate_get("/metrics").status_code == 401
    assert guarded.simulate_get("/metrics", headers={"X-API-Key": DESK_KEY}).status_code == 401  # a price key is not it
    assert guarded.simulate_get("/metrics", headers={"Authorization": "Bearer " + "m" * 20}).status_code != 401


# --- Flight in-process ---------------------------------------------------------------------------


@pytest.fixture(scope="module")
def flight_server(utc_store):
    server = PriceFlightServer(utc_store, "grpc://127.0.0.1:0", 1000, middleware={Seam.NAME: Seam(accepted)})
    yield f"grpc://127.0.0.1:{server.port}"
    server.shutdown()


def test_flight_without_a_key_is_unauthenticated_and_says_how(flight_server):
    with flight.connect(flight_server) as raw:
        with pytest.raises(flight.FlightUnauthenticatedError, match="authorization: Bearer") as raised:
            raw.do_get(flight.Ticket(b'{"dataset": "day_ahead"}')).read_all()
        assert "Traceback" not in str(raised.value) and ".py" not in str(raised.value)
        wrong = flight.FlightCallOptions(headers=[(b"authorization", b"Bearer not-a-key-of-ours-000")])
        with pytest.raises(flight.FlightUnauthenticatedError, match="not accepted"):
            list(raw.list_flights(options=wrong))
        with pytest.raises(flight.FlightUnauthenticatedError):
            raw.authenticate_basic_token(DESK, "wrong-password-0000000")


def test_flight_bearer_header_basic_handshake_and_the_client(flight_server):
    with flight.connect(flight_server) as raw:
        bearer = flight.FlightCallOptions(headers=[(b"authorization", f"Bearer {DESK_KEY}".encode())])
        assert raw.do_get(flight.Ticket(b'{"dataset": "day_ahead", "hubs": ["HB_NORTH"]}'), options=bearer).read_all().num_rows
        pair = raw.authenticate_basic_token(DESK, DESK_KEY)
        assert pair == (b"authorization", f"Bearer {DESK_KEY}".encode())
        assert len(list(raw.list_flights(options=flight.FlightCallOptions(headers=[pair])))) >= 4
    with PriceClient(flight_server, api_key=OTHER_KEY) as prices:
        assert prices.table("2021-02-15", "2021-02-15", ["HB_NORTH"]).num_rows == 24
        assert prices.sql("SELECT count(*) AS n FROM day_ahead").column("n")[0].as_py() > 0
        assert prices.sql("SELECT count(*) AS n FROM day_ahead WHERE settlement_point = ?", ["HB_NORTH"]).num_rows == 1
        assert "HB_NORTH" in prices.available_hubs()
    with PriceClient(flight_server) as anonymous, pytest.raises(flight.FlightUnauthenticatedError):
        anonymous.available_hubs()


# --- the real server -----------------------------------------------------------------------------


def _with_key(url, key):
    return fetch(url, headers={"X-API-Key": key}) if key else fetch(url)


def test_serve_with_a_keys_file_reloaded_on_sighup_and_api_keys(utc_dir, tmp_path):
    import adbc_driver_flightsql.dbapi as adbc

    path = tmp_path / "keys"
    path.write_text(f"{DESK}:{DESK_KEY}\n")
    served = Served(["--data-dir", str(utc_dir), "--workers", "2", "--api-keys-file", str(path)],
                    {"API_KEYS": f"ops:{OTHER_KEY}"})
    try:
        served.wait_ready()
        url = served.base + PRICES
        assert _with_key(url, None)[0] == 401
        assert _with_key(url, DESK_KEY)[0] == 200 and _with_key(url, OTHER_KEY)[0] == 200
        with PriceClient(served.flight_location, api_key=DESK_KEY) as prices:
            assert prices.table("2021-02-15", "2021-02-15", ["HB_NORTH"]).num_rows == 24
        uri = f"grpc://127.0.0.1:{served.flight_port}"
        with adbc.connect(uri, db_kwargs={"username": "ops", "password": OTHER_KEY}) as conn, conn.cursor() as cur:
            cur.execute("SELECT count(*) FROM day_ahead")
            assert cur.fetchone()[0] > 0
        header = {"adbc.flight.sql.authorization_header": f"Bearer {DESK_KEY}"}
        with adbc.connect(uri, db_kwargs=header) as conn, conn.cursor() as cur:
            cur.execute("SELECT 1")
            assert cur.fetchone()[0] == 1
        with pytest.raises(adbc.Error), adbc.connect(uri) as conn, conn.cursor() as cur:
            cur.execute("SELECT 1")

        new_key = "the-new-key-of-desk-a-000"
        path.write_text(f"{DESK}:{new_key}\n")
        served.proc.send_signal(signal.SIGHUP)
        wait_until(lambda: _with_key(url, DESK_KEY)[0] == 401 and _with_key(url, new_key)[0] == 200, "the new keys")
        with PriceClient(served.flight_location, api_key=new_key) as prices:
            wait_until(lambda: bool(prices.available_hubs()), "the new key on Flight")
        path.write_text("broken line\n")  # a bad file on SIGHUP: the keys before still hold
        served.proc.send_signal(signal.SIGHUP)
        time.sleep(1)
        assert _with_key(url, new_key)[0] == 200 and served.proc.poll() is None
    finally:
        log = served.stop()
    assert "API keys not reloaded" in log and "broken line" not in log.split("API keys not reloaded")[0][-200:]
    assert DESK_KEY not in log and new_key not in log and OTHER_KEY not in log  # keys never reach the log
    assert f"{DESK}\n" in log or f" {DESK}" in log  # the access log names the key


def test_serve_without_keys_warns_that_it_is_open(fixture_utc_dir):
    served = Served(["--data-dir", str(fixture_utc_dir), "--workers", "1"], {})
    try:
        served.wait_ready()
    finally:
        log = served.stop()
    assert "no API keys configured" in log


def test_serve_refuses_a_bad_keys_file_at_startup(fixture_utc_dir, tmp_path):
    path = tmp_path / "keys"
    path.write_text("desk:short\n")
    served = Served(["--data-dir", str(fixture_utc_dir), "--api-keys-file", str(path)], {})
    assert served.proc.wait(timeout=60) != 0
    log = served.stop()
    assert "fewer than 16 characters" in log and "Traceback" not in log


def test_an_open_flight_server_answers_a_basic_handshake_too(utc_store):
    """BI tools and ADBC configured with a user name and password still connect to a service without keys."""
    import adbc_driver_flightsql.dbapi as adbc

    server = PriceFlightServer(utc_store, "grpc://127.0.0.1:0", 1000, middleware={Seam.NAME: Seam(ApiKeys)})
    try:
        uri = f"grpc://127.0.0.1:{server.port}"
        with adbc.connect(uri, db_kwargs={"username": "analyst", "password": "anything"}) as conn, conn.cursor() as cur:
            cur.execute("SELECT count(*) FROM day_ahead")
            columns = utc_store.datasets["day_ahead"].columns.values()
            assert cur.fetchone()[0] == sum(len(c) - c.null_count for c in columns)  # the long table: priced hours
    finally:
        server.shutdown()


def test_nothing_to_guard_is_no_layer(tmp_path):
    """No keys, no rate limit, no metrics key (the default): the hot path passes no guard code."""
    from ercot_fast.access.limits import RateLimit

    def app(environ, start_response):
        return []

    assert layer(ApiKeys())(app) is app
    assert layer(accepted())(app) is not app and layer(ApiKeys(), RateLimit(1, 1, tmp_path))(app) is not app
    assert layer(ApiKeys(), metrics_key="m" * 20)(app) is not app
