"""Metrics (``metrics.counters``, ``metrics.exposition``, ``GET /metrics``):
every process's counts added up, parsed back with prometheus-client's own
parser; through `ercot-fast serve` with two workers, the Flight child, a
reload and a worker killed."""
import json
import os
import signal
import time

import pyarrow.flight as flight
from falcon import testing
from prometheus_client.parser import text_string_to_metric_families

from ercot_fast.api.app import create_app
from ercot_fast.metrics import counters as counters_module
from ercot_fast.metrics.counters import Counters
from ercot_fast.metrics.exposition import METRICS, text
from serving import Served, fetch, http_workers

TILE = "start_date=2021-02-15&end_date=2021-02-15&hubs=HB_NORTH&price_type=day_ahead"


def samples(body):
    """{(sample name, sorted labels): value} of a Prometheus text body."""
    found = {}
    for family in text_string_to_metric_families(body.decode() if isinstance(body, bytes) else body):
        for sample in family.samples:
            found[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return found


def value(found, name, **labels):
    return found.get((name, tuple(sorted(labels.items()))), 0)


def test_counts_of_every_process_add_up_and_gauges_only_of_the_living(tmp_path):
    requests = ("ercot_fast_http_requests", (("route", "/api/prices"), ("status", "200"), ("path", "falcon")))
    mine = Counters(tmp_path, "http")
    mine.start(thread=False)
    mine.add(requests, 3)
    mine.observe(("ercot_fast_http_request_duration_seconds", (("route", "/api/prices"),)), 0.003)
    gone = {"counter": [[requests[0], [list(p) for p in requests[1]], 5]],
            "gauge": [["ercot_fast_response_cache_bytes", [], 999]], "histogram": []}
    (tmp_path / "999999999.json").write_text(json.dumps(gone))  # a worker that died: no such pid
    (tmp_path / "123.json").write_text("{not json")  # half-written files are skipped
    mine.set(("ercot_fast_response_cache_bytes", ()), 10)
    found = samples(text(*mine.everyone()))
    assert value(found, "ercot_fast_http_requests_total", route="/api/prices", status="200", path="falcon") == 8
    assert value(found, "ercot_fast_response_cache_bytes") == 10  # the dead worker's cache is gone with it
    assert value(found, "ercot_fast_http_request_duration_seconds_bucket", route="/api/prices", le="0.0025") == 0
    assert value(found, "ercot_fast_http_request_duration_seconds_bucket", route="/api/prices", le="0.005") == 1
    assert value(found, "ercot_fast_http_request_duration_seconds_bucket", route="/api/prices", le="+Inf") == 1
    assert value(found, "ercot_fast_processes", role="http") == 1
    mine.write()
    assert json.loads((tmp_path / f"{os.getpid()}.json").read_text())["role"] == "http"


def test_every_metric_has_help_and_a_prometheus_name():
    for name, (kind, help_text, labels) in METRICS.items():
        assert name.startswith("ercot_fast_") and not name.endswith("_total") and help_text
        assert kind in ("counter", "gauge", "histogram")


def test_metrics_in_process_count_both_paths_cache_and_304(utc_store):
    client = testing.TestClient(create_app(utc_store))
    first = client.simulate_get("/api/prices", query_string=TILE)
    client.simulate_get("/api/prices", query_string=TILE)  # the fast path: a cache hit
    client.simulate_get("/api/prices", query_string=TILE, headers={"If-None-Match": first.headers["etag"]})
    client.simulate_get("/api/nowhere")
    response = client.simulate_get("/metrics")
    assert response.status_code == 200 and response.headers["content-type"].startswith("text/plain; version=0.0.4")
    found = samples(response.text)
    assert value(found, "ercot_fast_response_cache_misses_total") == 1
    assert value(found, "ercot_fast_response_cache_hits_total") == 1
    assert value(found, "ercot_fast_response_cache_hit_bytes_total") == len(first.content)
    assert value(found, "ercot_fast_store_rows", dataset="day_ahead") == len(utc_store.datasets["day_ahead"])
    newest = int(utc_store.datasets["day_ahead"].timestamps[-1]) / 1000
    assert value(found, "ercot_fast_store_newest_timestamp_seconds", dataset="day_ahead") == newest
    # (requests are counted by the seam's observation layer: the served tests below)


def _scrape(served):
    status, headers, body = fetch(served.base + "/metrics")
    assert status == 200, body
    return samples(body)


def _wait_for(check, served, timeout=20):
    deadline = time.monotonic() + timeout
    while True:
        found = _scrape(served)
        if check(found):
            return found
        assert time.monotonic() < deadline, "the metrics did not show it in time"
        time.sleep(0.3)


def test_serve_metrics_add_up_workers_flight_and_the_master(utc_dir, tmp_path):
    served = Served(["--data-dir", str(utc_dir), "--workers", "2", "--rate-limit", "1000/s", "--burst", "1000"], {})
    try:
        served.wait_ready()
        url = f"{served.base}/api/prices?{TILE}"
        etag = fetch(url)[1]["etag"]
        for _ in range(40):  # new connections: both workers answer some
            fetch(url)
        fetch(url, headers={"If-None-Match": etag})
        fetch(f"{served.base}/api/prices?price_type=nope")
        with flight.connect(served.flight_location) as client:
            rows = client.do_get(flight.Ticket(b'{"dataset": "day_ahead", "hubs": ["HB_NORTH"]}')).read_all().num_rows
        found = _wait_for(lambda f: value(f, "ercot_fast_flight_calls_total", method="DoGet", status="OK") == 1
                          and value(f, "ercot_fast_processes", role="http") == 2, served)
        prices = {labels: v for (name, labels), v in found.items() if name == "ercot_fast_http_requests_total"
                  and ("route", "/api/prices") in labels}
        assert sum(v for labels, v in prices.items() if ("status", "200") in labels) == 41
        assert any(("path", "fastpath") in labels for labels in prices)
        assert value(found, "ercot_fast_http_requests_total", route="/api/prices", status="304", path="falcon") == 1
        assert value(found, "ercot_fast_http_requests_total", route="/api/prices", status="400", path="falcon") == 1
        assert value(found, "ercot_fast_flight_rows_total", method="DoGet") == rows > 0
        assert value(found, "ercot_fast_processes", role="flight") == 1
        assert value(found, "ercot_fast_processes", role="master") == 1
        before = value(found, "ercot_fast_http_requests_total", route="/api/prices", status="200", path="fastpath")

        served.proc.send_signal(signal.SIGHUP)
        found = _wait_for(lambda f: value(f, "ercot_fast_reloads_total", outcome="published") == 1, served)

        worker = http_workers(served.proc.pid)[0]
        time.sleep(1.2)  # its counts reach its file
        os.kill(worker, signal.SIGKILL)
        found = _wait_for(lambda f: value(f, "ercot_fast_processes", role="http") == 2
                          and worker not in http_workers(served.proc.pid), served)
        after = value(found, "ercot_fast_http_requests_total", route="/api/prices", status="200", path="fastpath")
        assert after >= before  # a dead worker's counts stay in the totals
    finally:
        log = served.stop()
    assert "Traceback" not in log


def test_the_writer_thread_writes_the_file(tmp_path, monkeypatch):
    monkeypatch.setattr(counters_module, "WRITE_SECONDS", 0.05)
    mine = Counters(tmp_path, "flight")
    mine.start()
    mine.add(("ercot_fast_flight_calls", (("method", "DoGet"), ("status", "OK"))))
    deadline = time.monotonic() + 5
    path = tmp_path / f"{os.getpid()}.json"
    while not (path.exists() and json.loads(path.read_text())["counter"]):
        assert time.monotonic() < deadline
        time.sleep(0.05)
