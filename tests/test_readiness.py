"""Readiness, draining and the gRPC health service, as an orchestrator meets
them: the real `ercot-fast serve` (127.0.0.1, free ports, always stopped),
probed over HTTP (/api/ready) and with grpcio's own health client
(grpc.health.v1.Health Check and Watch). Bounded in time; no time is asserted."""
import json
import os
import signal
import socket
import subprocess
import time
from pathlib import Path

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from ercot_fast import config
from ercot_fast.cli import build_parser
from serving import ERCOT_FAST, Served, fetch, free_port, wait_until

TILE = "/api/prices?start_date=2021-02-14&end_date=2021-02-20&hubs=HB_NORTH,HB_WEST&price_type=da"
FLIGHT_SERVICE = "arrow.flight.protocol.FlightService"
SERVING = health_pb2.HealthCheckResponse.SERVING
NOT_SERVING = health_pb2.HealthCheckResponse.NOT_SERVING


@pytest.fixture
def serve():
    running = []

    def start(data_dir, *args, health=True):
        """`ercot-fast serve` of ``data_dir``, with the gRPC health service on a free port."""
        health_port = free_port() if health else None
        extra = ["--health-addr", f"127.0.0.1:{health_port}"] if health else []
        served = Served(["--data-dir", str(data_dir), "--workers", "1", "--worker-class", "sync", *extra, *args], {})
        served.health_target = f"127.0.0.1:{health_port}"
        running.append(served)
        served.wait_ready()
        return served

    yield start
    for served in running:
        served.kill_all()


def check(target, service="", timeout=5):
    """The status a real gRPC health client gets (grpc.StatusCode on an error)."""
    with grpc.insecure_channel(target) as channel:
        try:
            return health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(service=service), timeout=timeout).status
        except grpc.RpcError as exc:
            return exc.code()


def ready(served):
    status, headers, body = fetch(served.base + "/api/ready")
    return status, json.loads(body), headers


def children(pid):
    found = []
    try:
        for task in Path(f"/proc/{pid}/task").iterdir():
            found += [int(child) for child in (task / "children").read_text().split()]
    except FileNotFoundError:
        pass
    return found


def child_named(served, name):
    """The pid of the master's child named ``name`` (the supervisor names its children)."""
    for pid in children(served.proc.pid):
        try:
            if Path(f"/proc/{pid}/comm").read_text().strip() == name:
                return pid
        except FileNotFoundError:
            pass
    return None


def test_ready_once_loaded_and_grpc_health_serving(serve, fixture_utc_dir):
    served = serve(fixture_utc_dir)
    status, body, headers = ready(served)
    assert (status, body) == (200, {"status": "ready"})
    assert headers["Content-Type"] == "application/json" and headers["Cache-Control"] == "no-store"
    with urlopen_head(served.base + "/api/ready") as resp:
        assert resp.status == 200
    wait_until(lambda: check(served.health_target) == SERVING, "gRPC health did not say SERVING")
    assert check(served.health_target, FLIGHT_SERVICE) == SERVING
    assert check(served.health_target, "no.such.Service") == grpc.StatusCode.NOT_FOUND
    with grpc.insecure_channel(served.health_target) as channel:
        stream = health_pb2_grpc.HealthStub(channel).Watch(health_pb2.HealthCheckRequest(service=FLIGHT_SERVICE), timeout=10)
        assert next(stream).status == SERVING
        stream.cancel()
    log = served.stop()
    assert served.proc.returncode == 0 and "Traceback" not in log
    assert "gRPC health serving on 127.0.0.1:" in log and "gRPC health service (pid" in log


def urlopen_head(url):
    import urllib.request

    return urllib.request.urlopen(urllib.request.Request(url, method="HEAD"), timeout=10)


def test_an_empty_data_directory_is_not_ready(serve, tmp_path):
    empty = tmp_path / "empty"
    empty.mkdir()
    served = serve(empty)
    status, body, _ = ready(served)
    assert status == 503 and body["status"] == "not_ready"
    assert body["reason"].startswith("no prices loaded from the data directory")
    assert str(tmp_path) not in json.dumps(body)  # no server path in an answer
    assert check(served.health_target) == NOT_SERVING and check(served.health_target, FLIGHT_SERVICE) == NOT_SERVING
    served.stop()


def test_draining_is_not_ready_and_still_serves_then_a_second_sigterm_stops_at_once(serve, fixture_utc_dir):
    served = serve(fixture_utc_dir, "--drain-seconds", "600")  # longer than the test: the second SIGTERM ends it
    wait_until(lambda: check(served.health_target) == SERVING, "gRPC health did not say SERVING")
    before = fetch(served.base + TILE)
    os.kill(served.proc.pid, signal.SIGTERM)
    wait_until(lambda: ready(served)[0] == 503, "/api/ready did not turn 503 on SIGTERM")
    status, body, _ = ready(served)
    assert body == {"status": "not_ready", "reason": "draining: the service is stopping"}
    status, _, answer = fetch(served.base + TILE)
    assert status == 200 and answer == before[2]  # prices are still served
    status, _, health = fetch(served.base + "/api/health")
    assert status == 200 and json.loads(health)["status"] == "healthy"
    wait_until(lambda: check(served.health_target) == NOT_SERVING, "gRPC health did not turn NOT_SERVING while draining")
    assert check(served.health_target, FLIGHT_SERVICE) == NOT_SERVING
    assert served.proc.poll() is None
    log = served.stop(signal.SIGTERM)  # again: stops now (Served.stop waits 30 s at most, the drain is 600)
    assert served.proc.returncode == 0, log
    assert "draining for 600 s" in log and "SIGTERM again while draining: stopping now" in log
    assert "Traceback" not in log and "Shutting down: Master" in log
    assert children(served.proc.pid) == []


def test_a_drain_ends_by_itself_and_sigint_never_drains(serve, fixture_utc_dir):
    served = serve(fixture_utc_dir, "--drain-seconds", "1", health=False)
    os.kill(served.proc.pid, signal.SIGTERM)
    served.proc.wait(timeout=60)
    log = served.stop()
    assert served.proc.returncode == 0 and "drained: stopping" in log and "Traceback" not in log
    served = serve(fixture_utc_dir, "--drain-seconds", "600")
    log = served.stop(signal.SIGINT, group=True)  # Ctrl-C: at once
    assert served.proc.returncode == 0 and "draining" not in log and "Traceback" not in log


def test_sigint_during_a_drain_stops_at_once(serve, fixture_utc_dir):
    served = serve(fixture_utc_dir, "--drain-seconds", "600", health=False)
    os.kill(served.proc.pid, signal.SIGTERM)
    wait_until(lambda: ready(served)[0] == 503, "/api/ready did not turn 503 on SIGTERM")
    log = served.stop(signal.SIGINT)
    assert served.proc.returncode == 0 and "Traceback" not in log
    assert children(served.proc.pid) == []


def test_grpc_health_follows_the_flight_child(serve, fixture_utc_dir):
    """NOT_SERVING from the Flight child's death until its replacement serves.
    The first crash is restarted at once; the second after a back-off (one
    second), long enough for a watcher to see NOT_SERVING every time."""
    served = serve(fixture_utc_dir)
    first = served.flight_pid()
    os.kill(first, signal.SIGKILL)
    second = served.next_flight_pid(first)
    with grpc.insecure_channel(served.health_target) as channel:
        stream = health_pb2_grpc.HealthStub(channel).Watch(health_pb2.HealthCheckRequest(service=FLIGHT_SERVICE), timeout=60)
        wait_for_status(stream, SERVING)
        os.kill(second, signal.SIGKILL)
        wait_for_status(stream, NOT_SERVING)
        wait_for_status(stream, SERVING)
        stream.cancel()
    third = served.next_flight_pid(second)
    assert third not in (first, second) and check(served.health_target) == SERVING
    log = served.stop()
    assert served.proc.returncode == 0, log
    assert f"Arrow Flight server (pid {second}) was killed by SIGKILL; restarting it" in log


def wait_for_status(stream, wanted):
    for answer in stream:  # the stream's own deadline bounds this
        if answer.status == wanted:
            return
    raise AssertionError(f"the Watch stream ended before {health_pb2.HealthCheckResponse.ServingStatus.Name(wanted)}")


def test_the_health_child_is_restarted_after_a_crash(serve, fixture_utc_dir):
    served = serve(fixture_utc_dir)
    first = child_named(served, "ercot-health")
    assert first is not None and first != served.flight_pid()
    os.kill(first, signal.SIGKILL)
    wait_until(lambda: child_named(served, "ercot-health") not in (None, first), "the health child was not restarted")
    wait_until(lambda: check(served.health_target) == SERVING, "the new health child does not say SERVING")
    log = served.stop()
    assert served.proc.returncode == 0, log
    assert f"gRPC health service (pid {first}) was killed by SIGKILL; restarting it" in log
    assert children(served.proc.pid) == []


def test_health_port_in_use_is_a_clear_error(fixture_utc_dir):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = subprocess.run(
            [ERCOT_FAST, "serve", "--data-dir", str(fixture_utc_dir), "--json-addr", f"127.0.0.1:{free_port()}",
             "--flight-addr", f"127.0.0.1:{free_port()}",
             "--stream-addr", f"127.0.0.1:{free_port()}", "--health-addr", f"127.0.0.1:{port}", "--workers", "1",
             "--worker-class", "sync"],
            capture_output=True, text=True, timeout=120,
        )
    assert result.returncode == 1 and "Traceback" not in result.stderr
    assert f"error: the gRPC health service cannot serve on 127.0.0.1:{port}" in result.stderr
    assert "choose another with --health-addr or HEALTH_ADDR" in result.stderr


def settings(*argv, environ=None):
    args = build_parser().parse_args(["serve", *argv])
    return config.serve_config(args, environ or {})


def test_drain_and_health_settings():
    default = settings()
    assert default.drain_seconds == 0 and default.health_addr is None
    from_env = settings(environ={"DRAIN_SECONDS": "5", "HEALTH_ADDR": "0.0.0.0:50052"})
    assert from_env.drain_seconds == 5 and from_env.health_addr == "0.0.0.0:50052"
    assert settings("--drain-seconds", "2.5", environ={"DRAIN_SECONDS": "5"}).drain_seconds == 2.5
    with pytest.raises(SystemExit, match="--drain-seconds"):
        settings("--drain-seconds", "-1")
    with pytest.raises(SystemExit, match="--flight-addr and --health-addr are both 0.0.0.0:50051"):
        settings("--health-addr", "0.0.0.0:50051")
    with pytest.raises(SystemExit, match="is not HOST:PORT"):
        settings("--health-addr", "50052")
    text = build_parser()._subparsers._group_actions[0].choices["serve"].format_help()
    for flag in ("--drain-seconds", "DRAIN_SECONDS", "--health-addr", "HEALTH_ADDR"):
        assert flag in text
