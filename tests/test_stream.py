"""GET /api/stream: Server-Sent Events of new intervals. The events' content
(api.events) against /api/prices; the stream's server (serve.stream) in
process, for heartbeats and slow subscribers; and `ercot-fast serve` end to
end: a reload reaches subscribers on the stream port and through the HTTP
port's redirect, Last-Event-ID resumes, API keys and the rate limit apply."""
import asyncio
import json
import shutil
import signal
import socket
import subprocess
import urllib.parse
import urllib.request

import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer
from falcon import testing

from ercot_fast import config, timeutil
from ercot_fast.api import events
from ercot_fast.api.app import create_app
from ercot_fast.demo import write_demo_data
from ercot_fast.errors import QueryError
from ercot_fast.serve import stream as stream_server
from ercot_fast.store.load import load_store
from serving import ERCOT_FAST, Served, fetch, free_port
from test_config import serve_args
from throwaway_tls import ThrowawayCA

DA = {"price_type": "da", "hubs": "HB_NORTH,HB_WEST"}


def prices(client, **params):
    resp = client.simulate_get("/api/prices", params=params)
    assert resp.status_code == 200, resp.text
    return resp.json


def parse(event):
    """An event's bytes -> {"event": ..., "id": ..., "data": parsed JSON}."""
    fields = dict(line.split(": ", 1) for line in event.decode().strip().split("\n"))
    return {**fields, "data": json.loads(fields["data"])}


# --- the events -----------------------------------------------------------------------------


def test_an_event_is_the_prices_answer_of_the_intervals_not_yet_seen(fixture_store, fixture_client):
    subscription = events.subscribe({**DA, "tz": "America/Chicago"}, fixture_store, 1000, 1000)
    timestamps = fixture_store.datasets["day_ahead"].timestamps
    seen = events.start(subscription, fixture_store, backfill=5)
    assert seen == (int(timestamps[-6]),)
    [event], seen = events.catch_up(subscription, fixture_store, seen, 1000)
    event = parse(event)
    assert event["event"] == "day_ahead"
    assert event["id"] == timeutil.format_instant(int(timestamps[-1])) and seen == (int(timestamps[-1]),)
    assert event["data"] == prices(fixture_client, **DA, tz="America/Chicago", start_date=str(int(timestamps[-5])),
                                   end_date=str(int(timestamps[-1])))
    assert len(event["data"]["timestamps"]) == 5
    assert events.catch_up(subscription, fixture_store, seen, 1000) == ([], seen)  # nothing new: nothing sent


def test_last_event_id_resumes_after_exactly_what_was_seen(fixture_store):
    subscription = events.subscribe({"price_type": "rt", "resolution": "15min", "hubs": "HB_HOUSTON"}, fixture_store, 1000, 1000)
    [whole], _ = events.catch_up(subscription, fixture_store, events.start(subscription, fixture_store, backfill=10), 1000)
    whole = parse(whole)["data"]
    middle = whole["timestamps"][5]
    [rest], _ = events.catch_up(subscription, fixture_store, events.start(subscription, fixture_store, 0, middle), 1000)
    rest = parse(rest)["data"]
    assert rest["timestamps"] == whole["timestamps"][6:]  # no gap, no duplicate
    assert rest["data"][0]["prices"] == whole["data"][0]["prices"][6:]


def test_without_backfill_or_an_id_a_subscriber_starts_at_the_newest_interval(fixture_store):
    subscription = events.subscribe(DA, fixture_store, 1000, 1000)
    assert events.catch_up(subscription, fixture_store, events.start(subscription, fixture_store), 1000)[0] == []


def test_combined_sends_one_event_per_data_set_and_its_id_holds_each(fixture_store):
    subscription = events.subscribe({"price_type": "combined", "hubs": "HB_NORTH"}, fixture_store, 1000, 1000)
    assert subscription.datasets == ("day_ahead", "real_time", "ancillary_services")
    found, seen = events.catch_up(subscription, fixture_store, events.start(subscription, fixture_store, backfill=2), 1000)
    found = [parse(e) for e in found]
    assert [e["event"] for e in found] == ["day_ahead", "real_time"]  # the fixture has no ancillary prices
    assert [h["hub"] for h in found[1]["data"]["data"]] == ["HB_NORTH"]
    assert found[-1]["id"].count(",") == 2
    assert events.parse_id(found[-1]["id"], 3) == seen  # resuming from the last id: nothing again


@pytest.mark.parametrize("params, last_event_id, error", [
    ({**DA, "start_date": "2021-02-15"}, None, "/api/stream takes no start_date"),
    ({**DA, "aggregate": "daily"}, None, "/api/stream takes no aggregate"),
    ({**DA, "hubs": "HB_NOPE"}, None, "unknown settlement point: HB_NOPE"),
    ({"price_type": "nope", "hubs": "HB_NORTH"}, None, "unknown price_type 'nope'"),
    ({**DA, "backfill": "-1"}, None, "backfill '-1' is not a number of intervals"),
    ({**DA, "backfill": str(events.MAX_BACKFILL + 1)}, None, "is not a number of intervals from 0 to 10000"),
    (DA, "yesterday", "Last-Event-ID 'yesterday' is not an id of this stream"),
    (DA, "2021-02-15T06:00:00Z,2021-02-15T06:00:00Z", "is not an id of this stream"),
])
def test_a_bad_subscription_says_what_to_change(fixture_store, params, last_event_id, error):
    with pytest.raises(QueryError) as raised:
        subscription = events.subscribe(params, fixture_store, 1000, 1000)
        events.start(subscription, fixture_store, events.backfill_count(params.get("backfill")), last_event_id)
    assert error in raised.value.message and raised.value.details


def test_the_http_port_redirects_to_the_stream_keeping_the_query(fixture_store):
    query = "price_type=da&hubs=HB_NORTH&backfill=3"
    resp = testing.TestClient(create_app(fixture_store, stream_addr="0.0.0.0:9191")).simulate_get(
        "/api/stream", query_string=query, host="prices.example")
    assert resp.status_code == 307
    assert resp.headers["location"] == f"http://prices.example:9191/api/stream?{query}"
    assert resp.json["stream"] == resp.headers["location"]
    resp = testing.TestClient(create_app(fixture_store, stream_addr="10.1.2.3:9191")).simulate_get("/api/stream")
    assert resp.headers["location"] == "http://10.1.2.3:9191/api/stream"


# --- the stream's server, in process ---------------------------------------------------------


class StillFollower:
    """A follower of a store the master never changes."""

    def __init__(self, store, api_keys=None):
        self.store = store
        self.api_keys = api_keys or {}

    def changed(self):
        return False


async def _open(port, path, rcvbuf=None, headers=""):
    sock = socket.socket()
    if rcvbuf:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
    sock.setblocking(False)
    await asyncio.get_running_loop().sock_connect(sock, ("127.0.0.1", port))
    reader, writer = await asyncio.open_connection(sock=sock)  # NOTE: it stops reading at 128 KB unread
    writer.write(f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n{headers}\r\n".encode())
    head = await reader.readuntil(b"\r\n\r\n")
    return reader, writer, head.decode()


def test_an_idle_stream_gets_a_heartbeat_comment(fixture_store, monkeypatch):
    monkeypatch.setattr(stream_server, "HEARTBEAT_SECONDS", 0.05)

    async def scenario():
        server = TestServer(stream_server.Stream(StillFollower(fixture_store), 1000, 1000, None).app(), host="127.0.0.1")
        await server.start_server()
        writer = None
        try:
            reader, writer, head = await _open(server.port, "/api/stream?price_type=da&hubs=HB_NORTH")
            assert head.startswith("HTTP/1.1 200")
            head = head.lower()
            assert "content-type: text/event-stream" in head and "x-accel-buffering: no" in head
            assert "server: ercot-fast" in head
            received = b""
            while received.count(events.HEARTBEAT) < 2:
                received += await asyncio.wait_for(reader.read(1024), 10)
            return received
        finally:
            if writer is not None:
                writer.close()
            await server.close()

    received = asyncio.run(scenario())
    assert b"event:" not in received  # comments only: nothing new was loaded


def test_a_subscriber_that_does_not_read_is_dropped_not_buffered(tmp_path, monkeypatch):
    monkeypatch.setattr(stream_server, "WRITE_SECONDS", 0.5)
    store = load_store(write_demo_data(tmp_path / "demo", years=range(2024, 2025))["data_dir"])
    path = "/api/stream?price_type=rt&resolution=15min&backfill=10000&hubs=" + ",".join(store.settlement_points)
    subscription = events.subscribe(dict(urllib.parse.parse_qsl(path.split("?")[1])), store, 1000, 1000)
    [backfill], _ = events.catch_up(subscription, store, events.start(subscription, store, 10000), 1000)
    assert len(backfill) > 1_000_000  # far more than the kernel's buffers hold for a client that does not read

    @web.middleware
    async def small_send_buffer(request, handler):  # NOTE: else loopback's buffers grow to megabytes
        request.transport.get_extra_info("socket").setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4096)
        return await handler(request)

    async def scenario():
        stream = stream_server.Stream(StillFollower(store), 1000, 1000, None)
        app = stream.app()
        app.middlewares.append(small_send_buffer)
        server = TestServer(app, host="127.0.0.1")
        await server.start_server()
        try:
            reader, writer, _ = await _open(server.port, path, rcvbuf=4096)
            deadline = asyncio.get_running_loop().time() + 30
            while not stream.subscribers and asyncio.get_running_loop().time() < deadline:
                await asyncio.sleep(0.01)
            assert stream.subscribers == 1
            while stream.subscribers and asyncio.get_running_loop().time() < deadline:
                await asyncio.sleep(0.05)  # not reading
            dropped = stream.subscribers == 0
            received = b""
            try:
                while dropped and (chunk := await asyncio.wait_for(reader.read(1 << 16), 10)):
                    received += chunk
            except ConnectionError:
                pass
            writer.close()
            return dropped, received
        finally:
            await server.close()

    dropped, received = asyncio.run(scenario())
    assert dropped
    assert len(received) < len(backfill)  # what it had not taken was thrown away with the connection


# --- ercot-fast serve ------------------------------------------------------------------------


class Subscriber:
    """An SSE client reading events as they come (urllib: redirects followed, chunks decoded)."""

    def __init__(self, url, headers=None, context=None):
        self.response = urllib.request.urlopen(urllib.request.Request(url, headers=headers or {}), timeout=30,
                                               context=context)

    def next_event(self):
        lines = []
        while True:
            line = self.response.readline().decode()
            assert line, "the stream ended"
            if line == "\n":
                if any(not part.startswith((":", "retry:")) for part in lines):
                    return parse("".join(lines).encode())
                lines = []
            else:
                lines.append(line)

    def close(self):
        self.response.close()


@pytest.fixture
def growing(fixture_utc_dir, tmp_path):
    """A data directory whose three newest day-ahead hours come later: (folder, write_them)."""
    data = shutil.copytree(fixture_utc_dir, tmp_path / "data")
    path = data / "flattened" / "DA_prices_2021.parquet"
    whole = pq.read_table(path)
    newest = whole.column("datetime_ts")[-3]
    pq.write_table(whole.filter(pc.less(whole.column("datetime_ts"), newest)), path)

    def write_them():
        pq.write_table(whole, path.with_suffix(".tmp"))
        path.with_suffix(".tmp").rename(path)

    return data, write_them


def test_a_reload_reaches_every_subscriber_and_last_event_id_resumes(growing):
    data, write_them = growing
    served = Served(["--data-dir", str(data), "--workers", "1"], {})
    try:
        served.wait_ready()
        query = "price_type=da&hubs=HB_NORTH,HB_WEST&backfill=1"
        direct = Subscriber(f"{served.stream_base}/api/stream?{query}")
        assert direct.response.headers["Content-Type"] == "text/event-stream; charset=utf-8"
        assert direct.response.headers["X-Accel-Buffering"] == "no"
        redirected = Subscriber(f"{served.base}/api/stream?{query}")  # the HTTP port's 307, followed
        assert redirected.response.url.startswith(served.stream_base)
        first = direct.next_event()
        assert redirected.next_event() == first and len(first["data"]["timestamps"]) == 1

        write_them()
        served.proc.send_signal(signal.SIGHUP)
        new = direct.next_event()
        assert redirected.next_event() == new
        assert len(new["data"]["timestamps"]) == 3 and new["id"] == new["data"]["timestamps"][-1]
        status, _, body = fetch(f"{served.base}/api/prices?price_type=da&hubs=HB_NORTH,HB_WEST"
                                f"&start_date={new['data']['timestamps'][0]}&end_date={new['id']}")
        assert status == 200 and json.loads(body) == new["data"]

        resumed = Subscriber(f"{served.stream_base}/api/stream?price_type=da&hubs=HB_NORTH,HB_WEST",
                             {"Last-Event-ID": first["id"]})
        assert resumed.next_event() == new
        for subscriber in (direct, redirected, resumed):
            subscriber.close()
    finally:
        served.stop()


def test_api_keys_and_the_rate_limit_apply_to_the_stream(fixture_utc_dir):
    key = "k" * 24
    served = Served(["--data-dir", str(fixture_utc_dir), "--workers", "1", "--rate-limit", "1/min", "--burst", "1"],
                    {"API_KEYS": f"desk:{key}"})
    try:
        served.wait_ready()
        url = f"{served.stream_base}/api/stream?price_type=da&hubs=HB_NORTH"
        status, headers, body = fetch(url)
        assert status == 401 and json.loads(body)["error"] == "API key required"
        subscriber = Subscriber(url, {"X-API-Key": key})
        assert subscriber.response.status == 200
        status, headers, body = fetch(url, headers={"X-API-Key": key})
        assert status == 429 and int(headers["Retry-After"]) >= 1
        assert json.loads(body)["error"] == "rate limit exceeded"
        subscriber.close()
    finally:
        served.stop()


def test_the_stream_address_defaults_to_the_http_port_plus_one_and_must_differ():
    assert config.serve_config(serve_args(), environ={}).stream_addr == "0.0.0.0:8081"
    assert config.serve_config(serve_args("--json-addr", "127.0.0.1:9000"), environ={}).stream_addr == "127.0.0.1:9001"
    assert config.serve_config(serve_args(), environ={"STREAM_ADDR": "127.0.0.1:7000"}).stream_addr == "127.0.0.1:7000"
    with pytest.raises(SystemExit, match="--flight-addr and --stream-addr are both 127.0.0.1:7000"):
        config.serve_config(serve_args("--flight-addr", "127.0.0.1:7000", "--stream-addr", "127.0.0.1:7000"), environ={})


def test_a_stream_port_in_use_is_a_clear_error(fixture_utc_dir):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = subprocess.run(
            [ERCOT_FAST, "serve", "--data-dir", str(fixture_utc_dir), "--json-addr", f"127.0.0.1:{free_port()}",
             "--flight-addr", f"127.0.0.1:{free_port()}", "--stream-addr", f"127.0.0.1:{port}", "--workers", "1",
             "--worker-class", "sync"],
            capture_output=True, text=True, timeout=120,
        )
    assert result.returncode == 1 and "Traceback" not in result.stderr
    assert f"error: the live-price stream cannot serve on 127.0.0.1:{port}" in result.stderr
    assert "choose another with --stream-addr or STREAM_ADDR" in result.stderr


def test_with_tls_the_stream_is_https_too(fixture_utc_dir, tmp_path):
    served = Served(["--data-dir", str(fixture_utc_dir), "--workers", "1"], {}, tls=ThrowawayCA(tmp_path / "tls"))
    try:
        served.wait_ready()
        subscriber = Subscriber(f"{served.base}/api/stream?price_type=da&hubs=HB_NORTH&backfill=1",
                                context=served.context)  # the HTTPS port's 307, followed
        assert subscriber.response.url.startswith(f"https://127.0.0.1:{served.stream_port}/")
        assert subscriber.next_event()["event"] == "day_ahead"
        subscriber.close()
    finally:
        served.stop()
