"""The limits of one client: the rate limit shared by every process
(``access.limits``), its 429 on HTTP and UNAVAILABLE on Flight, the largest
HTTP answer (413) and the request time limit (503)."""
import json
import multiprocessing
import os
import signal
import threading
import time

import pyarrow.flight as flight
import pytest
from falcon import testing

from ercot_fast import config
from ercot_fast.access.limits import RateLimit
from ercot_fast.api.app import create_app
from ercot_fast.api.resources import UNTIMED_CELLS
from ercot_fast.api.guard import layer
from ercot_fast.access.keys import ApiKeys
from ercot_fast.flight.seam import Seam
from ercot_fast.flight.server import PriceFlightServer
from ercot_fast.metrics.counters import Counters
from ercot_fast.query.parse import parse_query
from serving import Served, fetch

PRICES = "start_date=2021-02-15&end_date=2021-02-15&hubs=HB_NORTH&price_type=day_ahead"


def test_rates_are_read_with_their_unit():
    assert config.parse_rate("200/s") == 200 and config.parse_rate("6000/min") == 100
    assert config.parse_rate("360/h") == 0.1
    for bad in ("200", "0/s", "-1/s", "x/s", "10/week"):
        with pytest.raises(ValueError, match="is not a rate like 200/s"):
            config.parse_rate(bad)


def test_a_bucket_allows_its_burst_then_its_rate(tmp_path):
    limit = RateLimit(50, 10, tmp_path)
    assert sum(limit.take("a") == 0 for _ in range(30)) == 10  # the burst, at once
    assert limit.take("b") == 0  # another key has its own bucket
    wait = limit.take("a")
    assert 0 < wait <= 1 / 50 + 1e-9 and limit.retry_after(wait) == 1
    time.sleep(0.2)
    assert sum(limit.take("a") == 0 for _ in range(30)) in range(9, 13)  # 0.2 s at 50/s


def _hammer(limit, seconds, start, allowed):
    start.wait()
    deadline = time.monotonic() + seconds
    count = 0
    while time.monotonic() < deadline:
        count += limit.take("desk") == 0
    allowed.put(count)


def test_the_buckets_hold_across_processes_within_ten_percent(tmp_path):
    rate, burst, seconds = 200, 20, 2.0
    limit = RateLimit(rate, burst, tmp_path)
    context = multiprocessing.get_context("fork")  # as gunicorn's workers and the Flight child: forked after it is made
    start, allowed = context.Event(), context.Queue()
    processes = [context.Process(target=_hammer, args=(limit, seconds, start, allowed)) for _ in range(3)]
    for process in processes:
        process.start()
    start.set()
    total = sum(allowed.get(timeout=30) for _ in processes)
    for process in processes:
        process.join(timeout=30)
    expected = burst + rate * seconds
    assert abs(total - expected) <= 0.1 * expected, (total, expected)


def test_a_process_killed_mid_request_never_blocks_the_others(tmp_path):
    limit = RateLimit(1e6, 1e6, tmp_path)
    context = multiprocessing.get_context("fork")
    start, allowed = context.Event(), context.Queue()
    victim = context.Process(target=_hammer, args=(limit, 30, start, allowed))
    victim.start()
    start.set()
    time.sleep(0.3)
    os.kill(victim.pid, signal.SIGKILL)  # most likely inside take(), holding the bucket's lock
    victim.join()
    done = threading.Event()
    threading.Thread(target=lambda: (limit.take("desk"), done.set()), daemon=True).start()
    assert done.wait(5), "the bucket stayed locked by a dead process"


def test_http_answers_429_with_retry_after_per_client(utc_store, tmp_path):
    counters = Counters()
    app = create_app(utc_store, layers=[layer(ApiKeys(), RateLimit(1, 3, tmp_path), counters=counters)],
                     counters=counters)  # no keys: per client address
    client = testing.TestClient(app)
    statuses = [client.simulate_get("/api/prices", query_string=PRICES, remote_addr="10.0.0.1") for _ in range(5)]
    assert [r.status_code for r in statuses] == [200, 200, 200, 429, 429]
    refused = statuses[-1]
    assert refused.json["error"] == "rate limit exceeded" and "retry in 1 s" in refused.json["details"]
    assert refused.headers["retry-after"] == "1"
    assert client.simulate_get("/api/prices", query_string=PRICES, remote_addr="10.0.0.2").status_code == 200
    assert client.simulate_get("/api/health", remote_addr="10.0.0.1").status_code in (200, 503)  # never limited
    metrics = client.simulate_get("/metrics", remote_addr="10.0.0.1").text
    assert 'ercot_fast_rate_limited_total{protocol="http"} 2.0' in metrics  # and counted


def test_flight_refuses_calls_over_the_limit_unavailable(utc_store, tmp_path):
    limit = RateLimit(0.5, 2, tmp_path)
    server = PriceFlightServer(utc_store, "grpc://127.0.0.1:0", 1000, middleware={Seam.NAME: Seam(ApiKeys, limit)})
    try:
        with flight.connect(f"grpc://127.0.0.1:{server.port}") as client:
            ticket = flight.Ticket(json.dumps({"dataset": "day_ahead", "hubs": ["HB_NORTH"]}).encode())
            assert client.do_get(ticket).read_all().num_rows and list(client.do_action(flight.Action("available_hubs", b"")))
            with pytest.raises(flight.FlightUnavailableError, match="rate limit exceeded.*retry in 2 s"):
                client.do_get(ticket).read_all()
    finally:
        server.shutdown()


def test_http_answers_too_large_413_and_suggests_flight(utc_store):
    client = testing.TestClient(create_app(utc_store, max_response_mb=1, max_range_days=5000))
    small = client.simulate_get("/api/prices", query_string=PRICES)
    assert small.status_code == 200
    everything = ",".join(utc_store.settlement_points)
    query = f"start_date=2015-01-01&end_date=2023-12-31&hubs={everything}&price_type=real_time&resolution=15min"
    refused = client.simulate_get("/api/prices", query_string=query)  # refused before it is made
    assert refused.status_code == 413 and "Arrow Flight" in refused.json["details"]
    assert "over the limit of 1 MB" in refused.json["error"]
    medium = f"start_date=2019-01-01&end_date=2021-07-24&hubs={everything}&price_type=day_ahead"
    made = client.simulate_get("/api/prices", query_string=medium)  # refused once made
    assert made.status_code == 413, len(made.content)
    again = client.simulate_get("/api/prices", query_string=medium)
    assert again.status_code == 413  # and never remembered for the fast path


def test_a_request_past_the_time_limit_is_a_503_and_the_app_goes_on(utc_store, monkeypatch):
    from ercot_fast.render import formats

    render = formats.render

    def slow_render(*args):
        time.sleep(2)
        return render(*args)

    client = testing.TestClient(create_app(utc_store, request_timeout=0.2))
    monkeypatch.setattr(formats, "render", slow_render)
    started = time.monotonic()
    month = f"start_date=2021-02-01&end_date=2021-02-28&hubs={','.join(utc_store.settlement_points)}&price_type=day_ahead"
    assert parse_query(dict(p.split("=") for p in month.split("&")), utc_store).cells() > UNTIMED_CELLS
    stopped = client.simulate_get("/api/prices", query_string=month)
    assert stopped.status_code == 503 and "took longer than 0.2 s" in stopped.json["error"]
    assert time.monotonic() - started < 2
    monkeypatch.setattr(formats, "render", render)
    assert client.simulate_get("/api/prices", query_string=PRICES).status_code == 200


def test_serve_rate_limit_holds_across_workers(fixture_utc_dir):
    served = Served(["--data-dir", str(fixture_utc_dir), "--workers", "2", "--rate-limit", "20/s", "--burst", "5",
                     "--access-log", "off"], {})
    try:
        served.wait_ready()
        url = f"{served.base}/api/available_hubs"
        results = []

        def poll():
            deadline = time.monotonic() + 2
            while time.monotonic() < deadline:
                status, headers, _ = fetch(url)  # a new connection each: both workers take them
                results.append((status, headers.get("retry-after")))

        threads = [threading.Thread(target=poll) for _ in range(4)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    finally:
        served.stop()
    allowed = sum(status == 200 for status, _ in results)
    refused = [retry for status, retry in results if status == 429]
    assert refused and all(retry == "1" for retry in refused)
    assert 5 + 20 * 2 * 0.9 - 1 <= allowed <= (5 + 20 * 2) * 1.1 + 1, (allowed, len(results))
