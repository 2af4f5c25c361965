"""Faults under load, as an operator meets them: a reload while dashboards
poll, a worker killed as the OOM killer does, a corrupt file or an emptied
data directory before a reload, a full disk during an ingest, and stopping
the service. Real `ercot-fast serve` processes on tests/data's genuine cut,
127.0.0.1, free ports, bounded in requests and time, always stopped."""
import json
import os
import resource
import shutil
import signal
import socket
import subprocess
import time
from pathlib import Path

import pytest

from serving import ERCOT_FAST, Load, Served, fetch, free_port, http_workers, wait_until

TILE = "/api/prices?start_date=2021-02-14&end_date=2021-02-20&hubs=HB_NORTH,HB_WEST&price_type=da"
PAGE = "/api/prices?start_date=2021-02-14&end_date=2021-02-20&hubs=HB_NORTH,LZ_WEST,LZ_HOUSTON&price_type=rt&resolution=15min"
PATHS = [TILE, PAGE, "/api/health", "/api/available_hubs", "/api/prices?price_type=nope", TILE + "&tz=America/Chicago"]


@pytest.fixture
def data(fixture_utc_dir, tmp_path):
    """A data directory the test may change: the fixture's files."""
    return shutil.copytree(fixture_utc_dir, tmp_path / "data")


@pytest.fixture
def serve():
    running = []

    def start(data_dir, *args, workers=2, worker_class="meinheld"):
        served = Served(["--data-dir", str(data_dir), "--workers", str(workers), "--worker-class", worker_class, *args], {})
        running.append(served)
        served.wait_ready()
        return served

    yield start
    for served in running:
        served.kill_all()


def children(pid):
    """Pids whose parent is ``pid`` (none once it has exited)."""
    found = []
    try:
        for task in Path(f"/proc/{pid}/task").iterdir():
            found += [int(child) for child in (task / "children").read_text().split()]
    except FileNotFoundError:  # the process (or a thread of it) is gone
        pass
    return found


def health(served):
    status, _, body = fetch(served.base + "/api/health")
    return status, json.loads(body)


def hup(served):
    os.kill(served.proc.pid, signal.SIGHUP)


@pytest.mark.parametrize("worker_class", ["meinheld", "sync"])
def test_reloads_under_load_lose_no_request(serve, data, worker_class):
    for real_time in (data / "flattened").glob("RT_prices_15min_*.parquet"):
        real_time.rename(data / real_time.name)  # not served yet
    served = serve(data, worker_class=worker_class)
    with Load(served.port, PATHS, connections=32) as load:
        load.wait_for(300)
        for _ in range(3):
            hup(served)
            load.wait_for(300)
        for real_time in data.glob("RT_prices_15min_*.parquet"):
            real_time.rename(data / "flattened" / real_time.name)
        hup(served)  # new data: every worker swaps to it
        wait_until(lambda: len(json.loads(fetch(served.base + PAGE)[2])["timestamps"]) == 7 * 96, "no worker swapped")
        load.wait_for(300)
    assert load.failures == [], load.failures[:5]
    assert set(load.statuses) == {200, 400}
    assert health(served) == (200, health(served)[1]) and health(served)[1]["status"] == "healthy"
    log = served.stop()
    # SIGHUPs that arrive while a reload runs start one more after it: 2 to 4 reloads
    assert "Traceback" not in log and 2 <= log.count("reloaded ") <= 4, log


def test_a_killed_worker_is_replaced_and_only_its_requests_fail(serve, data):
    served = serve(data, workers=2)
    wait_until(lambda: len(http_workers(served.proc.pid)) == 2, "the second worker did not boot")  # one answering is not two booted
    workers = http_workers(served.proc.pid)
    connections = 16
    with Load(served.port, PATHS, connections=connections) as load:
        load.wait_for(300)
        os.kill(workers[0], signal.SIGKILL)  # as the OOM killer does
        load.wait_for(1000)
    # only requests on the killed worker's connections failed, each at most once
    assert len(load.failures) <= connections, load.failures
    assert served.proc.poll() is None  # the master survived
    wait_until(lambda: len(http_workers(served.proc.pid)) == 2, "the worker was not replaced")
    assert health(served)[0] == 200
    log = served.stop()
    assert served.proc.returncode == 0 and "Traceback" not in log
    assert f"Worker (pid:{workers[0]}) was sent SIGKILL" in log


def test_a_corrupt_file_and_a_reload_keep_the_old_data(serve, data):
    served = serve(data)
    before = fetch(served.base + TILE)[2]
    (data / "flattened" / "DA_prices_2021.parquet").write_bytes(b"PAR1 truncated by a half-finished sync")
    hup(served)
    wait_until(lambda: health(served)[1]["status"] == "degraded", "health did not turn degraded")
    status, body = health(served)
    assert status == 200 and body["problems"][0]["problem"] == "reload_refused"
    assert "day_ahead would have" in body["problems"][0]["details"]
    assert fetch(served.base + TILE)[2] == before  # the old data still serves
    log = served.stop()
    assert "skipped unreadable file flattened/DA_prices_2021.parquet" in log and "reload refused" in log


def test_an_emptied_data_directory_is_refused_then_a_good_reload_clears_it(serve, data, tmp_path):
    served = serve(data)
    before = fetch(served.base + PAGE)[2]
    shutil.move(data / "flattened", tmp_path / "aside")  # an unmounted volume
    hup(served)
    wait_until(lambda: health(served)[1]["status"] == "degraded", "health did not turn degraded")
    assert "the new load holds no prices" in health(served)[1]["problems"][0]["details"]
    assert fetch(served.base + PAGE)[2] == before
    shutil.move(tmp_path / "aside", data / "flattened")  # mounted again
    hup(served)
    wait_until(lambda: health(served)[1]["status"] == "healthy", "a good reload did not clear the problem")
    served.stop()


def test_a_deliberate_shrink_is_accepted_once(serve, data):
    served = serve(data)
    for real_time in (data / "flattened").glob("RT_prices_15min_*.parquet"):
        real_time.unlink()
    (data / ".allow-shrink").touch()
    hup(served)
    wait_until(lambda: json.loads(fetch(served.base + PAGE)[2])["timestamps"] == [], "the shrink was not served")
    assert health(served)[1]["status"] == "healthy" and not (data / ".allow-shrink").exists()
    log = served.stop()
    assert "reload shrinks the service, as allowed: " in log and "real_time_15min would have no rows" in log


@pytest.mark.parametrize("worker_class", ["meinheld", "sync"])
@pytest.mark.parametrize("sig, group", [(signal.SIGINT, True), (signal.SIGINT, False), (signal.SIGTERM, True), (signal.SIGTERM, False)])
def test_stop_signals_end_everything_cleanly(serve, data, worker_class, sig, group):
    served = serve(data, worker_class=worker_class)
    fetch(served.base + TILE)
    log = served.stop(sig, group=group)
    assert served.proc.returncode == 0, log
    assert "Traceback" not in log and "Shutting down: Master" in log
    assert children(served.proc.pid) == []


def test_a_full_disk_during_ingest_is_a_clear_error_and_nothing_is_half_written(fixture_utc_dir, tmp_path):
    reports = Path(__file__).parent / "data"
    target = tmp_path / "data"
    first = subprocess.run([ERCOT_FAST, "ingest", str(reports / "np4_190_cd"), "--data-dir", str(target)],
                           capture_output=True, text=True, timeout=120)
    assert first.returncode == 0, first.stderr
    written = {p: p.read_bytes() for p in target.rglob("*.parquet")}

    def small_disk():
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # a write past the limit fails with EFBIG, like ENOSPC
        resource.setrlimit(resource.RLIMIT_FSIZE, (2000, 2000))

    run = subprocess.run([ERCOT_FAST, "ingest", str(reports), "--data-dir", str(target)],
                         capture_output=True, text=True, timeout=120, preexec_fn=small_disk)
    assert run.returncode == 1 and "Traceback" not in run.stderr
    assert "error: ingest stopped: cannot write" in run.stderr and "run it again" in run.stderr
    assert {p: p.read_bytes() for p in target.rglob("*.parquet")} == written  # each file old, none torn
    assert not [p for p in target.rglob("*") if p.name.endswith(".tmp")]


def raw_exchange(port, raw):
    """Send ``raw`` on a new connection; return all the server sent before it closed the connection."""
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(raw)
        data = b""
        while chunk := sock.recv(65536):
            data += chunk
        return data


@pytest.mark.parametrize("worker_class", ["meinheld", "sync"])
def test_requests_the_http_server_rejects_itself(serve, data, worker_class):
    """Past the server layer's limits (a request line over about 8 KB, control
    bytes in it, huge headers) the client gets a 400 (HTML, from the server
    layer: documented) and the connection is closed; the worker survives."""
    served = serve(data, workers=1, worker_class=worker_class)
    [worker] = http_workers(served.proc.pid)
    long_url = b"GET /api/prices?price_type=da&hubs=" + b"HB_NORTH," * 1000 + b" HTTP/1.1\r\nHost: x\r\n\r\n"
    control = b"GET /api/\x01health HTTP/1.1\r\nHost: x\r\n\r\n"
    for raw in (long_url, control):
        answer = raw_exchange(served.port, raw)  # returns only once the server closed the connection
        assert answer.split(b"\r\n")[0].split()[1] in (b"400", b"414"), answer[:200]
    ok = raw_exchange(served.port, b"GET /api/health HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    assert ok.startswith(b"HTTP/1.1 200") and b'"status":"healthy"' in ok
    assert http_workers(served.proc.pid) == [worker]
    served.stop()


def test_post_for_a_list_longer_than_a_url(serve, data):
    served = serve(data, workers=1)
    hubs = ["HB_NORTH", "HB_WEST", "LZ_HOUSTON"] * 400  # 1,200 names, about 11 KB: no URL takes it
    body = json.dumps({"start_date": "2021-02-17", "end_date": "2021-02-17", "hubs": hubs, "price_type": "da"})
    raw = (f"POST /api/prices HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
           f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n{body}").encode()
    answer = raw_exchange(served.port, raw)
    head, _, payload = answer.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 400")  # over --max-series (1,000): a JSON 400 that says so
    assert json.loads(payload)["error"] == "1200 series asked for, more than the maximum of 1000"
    hubs = hubs[:900]
    body = json.dumps({"start_date": "2021-02-17", "end_date": "2021-02-17", "hubs": hubs, "price_type": "da"})
    raw = (f"POST /api/prices HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
           f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n{body}").encode()
    head, _, payload = raw_exchange(served.port, raw).partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200") and [s["hub"] for s in json.loads(payload)["data"]] == hubs
    served.stop()


def test_an_unwritable_runtime_folder_is_a_clear_error(data):
    run = subprocess.run([ERCOT_FAST, "serve", "--data-dir", str(data), "--runtime-dir", "/proc/no-such-folder",
                          "--json-addr", f"127.0.0.1:{free_port()}", "--flight-addr", f"127.0.0.1:{free_port()}",
                          "--stream-addr", f"127.0.0.1:{free_port()}"],
                         capture_output=True, text=True, timeout=120)
    assert run.returncode == 1 and "Traceback" not in run.stderr
    assert "error: cannot write the store the processes share" in run.stderr and "--runtime-dir" in run.stderr


@pytest.mark.parametrize("worker_class", ["meinheld", "sync"])
def test_a_chunked_post(serve, data, worker_class):
    """A body without a Content-Length (chunked, as HTTP clients stream one) is read too."""
    served = serve(data, workers=1, worker_class=worker_class)
    body = json.dumps({"start_date": "2021-02-17", "end_date": "2021-02-17", "hubs": ["HB_NORTH"], "price_type": "da"}).encode()
    raw = (b"POST /api/prices HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n"
           b"Connection: close\r\n\r\n" + b"%x\r\n" % len(body) + body + b"\r\n0\r\n\r\n")
    head, _, payload = raw_exchange(served.port, raw).partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200") and len(json.loads(payload)["timestamps"]) == 24
    served.stop()
