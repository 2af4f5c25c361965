"""TLS end to end, with a throwaway CA made here and real clients:
`ercot-fast serve --tls-cert --tls-key` over HTTPS (urllib, requests,
http.client) and Flight over grpc+tls:// (PriceClient, pyarrow.flight);
what a client without the CA, or speaking plain HTTP/gRPC, meets; the
misconfigurations; stopping; and TLS termination by Debian's nginx in front
of meinheld with docker/nginx/ercot-fast.conf as documented."""
import http.client
import http.server
import json
import shutil
import signal
import ssl
import subprocess
import threading
import time
import types
import urllib.error
import urllib.request

import pyarrow.flight as flight
import pytest
import requests

from ercot_fast import config
from ercot_fast.client import PriceClient
from serving import ERCOT_FAST, Load, Served, fetch, free_port
from test_config import serve_args
from throwaway_tls import ThrowawayCA, nginx_binary, start_nginx, stop_nginx

TILE = "/api/prices?start_date=2021-02-14&end_date=2021-02-20&hubs=HB_NORTH,HB_WEST&price_type=da"
TICKET = {"start_date": "2021-02-14", "end_date": "2021-02-20", "hubs": ["HB_NORTH", "HB_WEST"], "price_type": "da",
          "layout": "wide"}


def large_query(hubs):
    """A POST /api/prices body: the cut's settlement points, 15-minute, repeated up to
    the 1000 series a request may ask: an answer of many TLS records and socket buffers."""
    return json.dumps({"start_date": "2021-02-01", "end_date": "2021-02-28", "price_type": "rt", "resolution": "15min",
                       "hubs": hubs * (1000 // len(hubs))})


@pytest.fixture(scope="module")
def ca(tmp_path_factory):
    if shutil.which("openssl") is None:
        pytest.skip("needs the openssl command for a throwaway CA (apt-get install openssl; .ci/run installs it)")
    return ThrowawayCA(tmp_path_factory.mktemp("tls"))


@pytest.fixture(scope="module")
def other_ca(ca, tmp_path_factory):
    """A CA that did not sign the server's certificate (made as ``ca`` is)."""
    return ThrowawayCA(tmp_path_factory.mktemp("other-tls"))


@pytest.fixture
def serve(fixture_utc_dir, ca):
    running = []

    def start(*args, workers=1, tls=ca):
        served = Served(["--data-dir", str(fixture_utc_dir), "--workers", str(workers), *args], {}, tls=tls)
        running.append(served)
        served.wait_ready()
        return served

    yield start
    for served in running:
        served.kill_all()


def expected(fixture_client, path):
    return fixture_client.simulate_get(path).content


@pytest.mark.parametrize("worker_class", [None, "sync"])
def test_https_with_the_ca_and_without(serve, ca, other_ca, fixture_client, worker_class):
    served = serve(*(["--worker-class", worker_class] if worker_class else []))
    status, headers, body = fetch(served.base + TILE, served.context)
    assert status == 200 and headers["Content-Type"] == "application/json"
    assert body == expected(fixture_client, TILE)
    with requests.Session() as session:  # one keep-alive connection, as a dashboard's
        for _ in range(3):
            answer = session.get(served.base + TILE, verify=str(ca.ca), timeout=10)
            assert answer.status_code == 200 and answer.content == body
        query = large_query(session.get(served.base + "/api/available_hubs", verify=str(ca.ca), timeout=10).json())
    large = fixture_client.simulate_post("/api/prices", body=query, content_type="application/json").content
    assert len(large) > 4_000_000
    connection = http.client.HTTPSConnection("127.0.0.1", served.port, context=served.context, timeout=30)
    for method, path, query, answer in (("POST", "/api/prices", query, large), ("GET", TILE, None, body)):
        connection.request(method, path, body=query, headers={"Content-Type": "application/json"})  # byte-exact,
        response = connection.getresponse()  # and the connection serves on
        assert response.status == 200 and response.read() == answer
    connection.close()
    # a client that does not trust the CA: refused by the client, with the reason
    with pytest.raises(urllib.error.URLError) as refused:
        urllib.request.urlopen(served.base + TILE, timeout=10)
    assert isinstance(refused.value.reason, ssl.SSLCertVerificationError)
    with pytest.raises(requests.exceptions.SSLError, match="CERTIFICATE_VERIFY_FAILED"):
        requests.get(served.base + TILE, verify=str(other_ca.ca), timeout=10)
    assert requests.get(served.base.replace("127.0.0.1", "localhost") + TILE, verify=str(ca.ca), timeout=10).ok
    log = served.stop()
    assert served.proc.returncode == 0, log
    assert "Traceback" not in log
    assert f"Listening at: https://127.0.0.1:{served.port}" in log
    worker = "SyncWorker" if worker_class == "sync" else "ThreadWorker"
    assert f"Using worker: ercot_fast.serve.worker.{worker}" in log
    assert f"worker_class={worker_class or config.TLS_WORKER_CLASS}" in log


def test_plain_http_on_the_https_port_fails_cleanly_and_the_server_keeps_serving(serve):
    served = serve()
    for _ in range(3):
        connection = http.client.HTTPConnection("127.0.0.1", served.port, timeout=10)
        with pytest.raises((http.client.HTTPException, ConnectionError)):  # no HTTP answer: the handshake failed
            connection.request("GET", TILE)
            connection.getresponse().read()
        connection.close()
    status, _, _ = fetch(served.base + TILE, served.context)
    assert status == 200
    log = served.stop()
    assert served.proc.returncode == 0 and "Traceback" not in log, log
    assert "Invalid request from ip=127.0.0.1" in log  # one warning line per such connection


def test_flight_over_tls(serve, ca, other_ca, fixture_client):
    served = serve()
    assert served.flight_location.startswith("grpc+tls://")
    over_http = json.loads(expected(fixture_client, TILE))
    with PriceClient(served.flight_location, tls_root_certs=str(ca.ca)) as prices:  # the CA's path
        assert prices.health()["status"] == "healthy"
        table = prices.table("2021-02-14", "2021-02-20", ["HB_NORTH", "HB_WEST"], "da", layout="wide")
        assert table.column("HB_NORTH").to_pylist() == over_http["data"][0]["prices"]
    with PriceClient(served.flight_location, tls_root_certs=ca.ca.read_bytes()) as prices:  # or its bytes
        assert prices.sql("SELECT count(*) AS n FROM day_ahead").column("n")[0].as_py() > 0
    with flight.connect(served.flight_location, tls_root_certs=ca.ca.read_bytes()) as client:  # plain pyarrow
        client.wait_for_available(timeout=30)
        table = client.do_get(flight.Ticket(json.dumps(TICKET).encode())).read_all()
        assert table.column("HB_WEST").to_pylist() == over_http["data"][1]["prices"]
        assert len(list(client.list_flights())) >= 4
    # a client that does not trust the CA, and one speaking plain gRPC, get no answer
    plain = served.flight_location.replace("grpc+tls://", "grpc://")
    for location, options in ((served.flight_location, {"tls_root_certs": other_ca.ca.read_bytes()}), (plain, {})):
        with flight.connect(location, **options) as client:
            with pytest.raises(flight.FlightUnavailableError):
                list(client.list_actions(flight.FlightCallOptions(timeout=5)))
    log = served.stop()
    assert served.proc.returncode == 0 and "Traceback" not in log, log
    assert f"Arrow Flight serving on grpc+tls://127.0.0.1:{served.flight_port}" in log


@pytest.mark.parametrize("sig, group", [(signal.SIGINT, True), (signal.SIGINT, False), (signal.SIGTERM, False)])
def test_the_tls_worker_stops_cleanly_with_connections_open(serve, sig, group):
    """Ctrl-C to the process group, SIGINT or SIGTERM to the master, while
    keep-alive HTTPS clients poll: exit 0, no traceback, nothing left."""
    served = serve(workers=2)
    with Load(served.port, [TILE, "/api/health"], connections=8, context=served.context) as load:
        load.wait_for(50)
        log = served.stop(sig, group=group)
    assert served.proc.returncode == 0, log
    assert "Traceback" not in log and "Shutting down: Master" in log
    assert load.statuses[200] >= 50


def test_a_renewed_certificate_serves_from_the_next_connection(serve, ca, other_ca, tmp_path):
    """One SSL context per worker (serve.tls), built again when the files change:
    no restart for a renewal; a renewal that does not load keeps the one before."""
    live = types.SimpleNamespace(ca=ca.ca, cert=tmp_path / "fullchain.pem", key=tmp_path / "privkey.pem")
    live.cert.write_bytes(ca.cert.read_bytes())
    live.key.write_bytes(ca.key.read_bytes())
    served = serve(tls=live)
    with requests.Session() as session:
        for _ in range(2):
            assert session.get(served.base + TILE, verify=str(ca.ca), timeout=10).ok
    live.key.write_text("-----BEGIN PRIVATE KEY-----\nbroken\n-----END PRIVATE KEY-----\n")  # half a renewal
    assert requests.get(served.base + TILE, verify=str(ca.ca), timeout=10).ok  # still the one loaded before
    for source, target in ((other_ca.cert, live.cert), (other_ca.key, live.key)):
        target.with_suffix(".new").write_bytes(source.read_bytes())
        target.with_suffix(".new").replace(target)
    assert requests.get(served.base + TILE, verify=str(other_ca.ca), timeout=10).ok  # the renewed one
    with pytest.raises(requests.exceptions.SSLError):
        requests.get(served.base + TILE, verify=str(ca.ca), timeout=10)
    log = served.stop()
    assert served.proc.returncode == 0 and "Traceback" not in log, log
    assert f"TLS: {live.cert} and {live.key} changed but do not load" in log


# --- misconfiguration -----------------------------------------------------------------


@pytest.mark.parametrize(
    "files, worker_class, message",
    [
        (("cert", None), None, "give both --tls-cert and --tls-key (or TLS_CERT and TLS_KEY), or neither"),
        ((None, "key"), None, "give both --tls-cert and --tls-key"),
        (("missing", "key"), None, "error: --tls-cert {missing}: cannot read it (No such file or directory)"),
        (("cert", "missing"), None, "error: --tls-key {missing}: cannot read it"),
        (("garbage", "key"), None, "error: --tls-cert {garbage} is not a PEM certificate"),
        (("cert", "cert"), None, "error: --tls-key {cert} is not a PEM private key"),
        (("cert", "encrypted"), None, "holds an encrypted key: give the key without a passphrase"),
        (("cert", "other_key"), None, "do not make a certificate and its key (KEY_VALUES_MISMATCH)"),
        (("cert", "key"), "meinheld", "the meinheld worker cannot serve TLS: leave --worker-class (WORKER_CLASS) unset"),
    ],
)
def test_tls_misconfiguration_is_a_clear_error(ca, other_ca, tmp_path, files, worker_class, message):
    paths = {"cert": ca.cert, "key": ca.key, "other_key": other_ca.key, "missing": tmp_path / "missing.pem",
             "garbage": tmp_path / "garbage.pem", "encrypted": tmp_path / "encrypted.pem"}
    paths["garbage"].write_text("not a certificate\n")
    subprocess.run(["openssl", "pkey", "-in", str(ca.key), "-aes256", "-passout", "pass:secret", "-out", str(paths["encrypted"])],
                   check=True, capture_output=True)
    cert, key = (None if name is None else str(paths[name]) for name in files)
    argv = [*(["--tls-cert", cert] if cert else []), *(["--tls-key", key] if key else []),
            *(["--worker-class", worker_class] if worker_class else [])]
    with pytest.raises(SystemExit) as stopped:
        config.serve_config(serve_args(*argv), environ={})
    assert message.format(**{name: str(path) for name, path in paths.items()}) in str(stopped.value)


def test_tls_settings_from_the_environment(ca):
    environ = {"TLS_CERT": str(ca.cert), "TLS_KEY": str(ca.key)}
    settings = config.serve_config(serve_args(), environ=environ)
    assert (settings.tls_cert, settings.tls_key, settings.worker_class) == (str(ca.cert), str(ca.key), config.TLS_WORKER_CLASS)
    assert config.serve_config(serve_args("--worker-class", "sync"), environ=environ).worker_class == "sync"
    assert config.serve_config(serve_args(), environ={}).worker_class == "meinheld"  # without TLS, as before
    with pytest.raises(SystemExit, match="meinheld worker cannot serve TLS"):
        config.serve_config(serve_args(), environ={**environ, "WORKER_CLASS": "meinheld"})
    # TLS for Flight only, plain HTTP for meinheld behind nginx
    for settings in (config.serve_config(serve_args("--plain-http"), environ=environ),
                     config.serve_config(serve_args("--worker-class", "meinheld"), environ={**environ, "PLAIN_HTTP": "1"})):
        assert settings.tls and not settings.http_tls and settings.worker_class == "meinheld"


def test_a_bad_certificate_stops_serve_at_startup_naming_the_flag(fixture_utc_dir, ca, tmp_path):
    garbage = tmp_path / "cert.pem"
    garbage.write_text("-----BEGIN NOTHING-----\n")
    result = subprocess.run(
        [ERCOT_FAST, "serve", "--data-dir", str(fixture_utc_dir), "--json-addr", f"127.0.0.1:{free_port()}",
         "--flight-addr", f"127.0.0.1:{free_port()}",
         "--stream-addr", f"127.0.0.1:{free_port()}", "--tls-cert", str(garbage), "--tls-key", str(ca.key)],
        capture_output=True, text=True, timeout=60,
    )
    assert result.returncode != 0
    assert f"error: --tls-cert {garbage} is not a PEM certificate" in result.stderr
    assert "Traceback" not in result.stderr + result.stdout


# --- nginx in front of meinheld ----------------------------------------------------------


@pytest.fixture
def nginx(tmp_path, ca):
    """Start nginx (``nginx(upstream_addr)`` -> its https base URL), stopped after the test."""
    if nginx_binary() is None:
        pytest.skip("needs Debian's nginx (apt-get install nginx; .ci/run installs it)")
    running = []

    def start(upstream_addr):
        port = free_port()
        proc = start_nginx(tmp_path, port, upstream_addr, ca.cert, ca.key, stderr=subprocess.PIPE, text=True)
        running.append(proc)
        context = ssl.create_default_context(cafile=ca.ca)
        deadline = time.monotonic() + 30
        while True:
            try:
                fetch(f"https://127.0.0.1:{port}/api/health", context)
                return f"https://127.0.0.1:{port}"
            except OSError:
                assert proc.poll() is None, f"nginx exited: {proc.stderr.read()}{(tmp_path / 'error.log').read_text()}"
                assert time.monotonic() < deadline, "nginx did not answer"
                time.sleep(0.1)

    yield start
    for proc in running:
        assert stop_nginx(proc) == 0


def test_nginx_terminates_tls_in_front_of_meinheld(serve, nginx, ca, fixture_client):
    # as documented: plain HTTP for meinheld behind nginx, Flight over TLS
    served = serve("--tls-cert", str(ca.cert), "--tls-key", str(ca.key), "--plain-http", workers=2, tls=None)
    base = nginx(f"127.0.0.1:{served.port}")
    with requests.Session() as session:
        for _ in range(3):  # kept alive on both sides
            answer = session.get(base + TILE, verify=str(ca.ca), timeout=10)
            assert answer.status_code == 200 and answer.content == expected(fixture_client, TILE)
            assert answer.headers["Content-Type"] == "application/json" and "ETag" in answer.headers
        gzipped = session.get(base + TILE, verify=str(ca.ca), headers={"Accept-Encoding": "gzip"}, timeout=10)
        assert gzipped.headers["Content-Encoding"] == "gzip" and gzipped.content == answer.content  # the service's own
        query = large_query(session.get(base + "/api/available_hubs", verify=str(ca.ca), timeout=10).json())
        large = session.post(base + "/api/prices", data=query, headers={"Content-Type": "application/json"}, verify=str(ca.ca),
                             timeout=30)
        assert large.content == fixture_client.simulate_post("/api/prices", body=query, content_type="application/json").content
        missing = session.get(base + "/api/nope", verify=str(ca.ca), timeout=10)
        assert missing.status_code == 404 and "error" in missing.json()  # the service's JSON errors pass through
    with pytest.raises(requests.exceptions.SSLError):
        requests.get(base + TILE, timeout=10)  # without the CA
    with PriceClient(f"grpc+tls://127.0.0.1:{served.flight_port}", tls_root_certs=ca.ca.read_bytes()) as prices:
        assert prices.health()["status"] == "healthy"
    log = served.stop()
    assert served.proc.returncode == 0 and "Traceback" not in log, log
    assert "Using worker: ercot_fast.serve.worker.MeinheldWorker" in log
    assert f"Listening at: http://127.0.0.1:{served.port}" in log


class _Upstream(http.server.BaseHTTPRequestHandler):
    """What nginx forwards, seen from behind it: /events streams two events
    with ``X-Accel-Buffering: no``, the second once the client has the first;
    any other path echoes the request's headers and the port nginx connected from."""

    protocol_version = "HTTP/1.1"
    first_event_received = None  # a threading.Event per test
    gave_up = False

    def do_GET(self):
        if self.path != "/events":
            body = json.dumps({"headers": dict(self.headers), "from_port": self.client_address[1]}).encode()
            self._start(200, "application/json", len(body))
            self.wfile.write(body)
            return
        self._start(200, "text/event-stream", None, [("X-Accel-Buffering", "no"), ("Transfer-Encoding", "chunked")])
        self._chunk(b"data: first\n\n")
        # NOTE: a bound on the wait, not a timing: if nginx held the first event back, the client never gets it
        type(self).gave_up = not self.first_event_received.wait(timeout=15)
        self._chunk(b"data: second\n\n")
        self._chunk(b"")

    def _start(self, status, media_type, length, headers=()):
        self.send_response(status)
        self.send_header("Content-Type", media_type)
        if length is not None:
            self.send_header("Content-Length", str(length))
        for name, value in headers:
            self.send_header(name, value)
        self.end_headers()

    def _chunk(self, data):
        self.wfile.write(b"%x\r\n%s\r\n" % (len(data), data))
        self.wfile.flush()

    def log_message(self, *args):
        pass


def test_nginx_forwards_the_client_keeps_upstream_connections_and_streams_unbuffered_events(nginx, ca):
    _Upstream.first_event_received, _Upstream.gave_up = threading.Event(), False
    upstream = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Upstream)
    threading.Thread(target=upstream.serve_forever, daemon=True).start()
    try:
        base = nginx(f"127.0.0.1:{upstream.server_address[1]}")
        seen = [requests.get(base + "/headers", verify=str(ca.ca), timeout=10, headers={"X-Forwarded-For": "203.0.113.7"}).json()
                for _ in range(3)]
        headers = seen[0]["headers"]
        assert headers["X-Forwarded-For"] == "203.0.113.7, 127.0.0.1"  # the client's chain, then the client nginx saw
        assert headers["X-Forwarded-Proto"] == "https" and headers["Host"] == "127.0.0.1"
        assert "Connection" not in headers  # HTTP/1.1 keep-alive to the upstream
        assert len({answer["from_port"] for answer in seen}) == 1  # three clients' requests, one upstream connection
        with requests.get(base + "/events", verify=str(ca.ca), timeout=30, stream=True) as events:
            assert events.headers["Content-Type"] == "text/event-stream"
            lines = events.iter_lines()
            assert next(lines) == b"data: first"  # before the upstream has sent the second: not buffered
            _Upstream.first_event_received.set()
            assert [line for line in lines if line] == [b"data: second"]
        assert not _Upstream.gave_up
    finally:
        _Upstream.first_event_received.set()
        upstream.shutdown()
        upstream.server_close()
