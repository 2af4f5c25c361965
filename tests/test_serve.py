"""`ercot-fast serve` as a user runs it: real gunicorn (+ meinheld), 127.0.0.1,
a free port, queried over HTTP, always stopped."""
import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from ercot_fast.cli import build_parser

# the console script that `pip install` put beside this Python
ERCOT_FAST = str(Path(sys.executable).parent / "ercot-fast")


def free_port():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def fetch(url):
    try:
        with urllib.request.urlopen(url, timeout=10) as resp:
            return resp.status, resp.headers, resp.read()
    except urllib.error.HTTPError as err:
        return err.code, err.headers, err.read()


class Served:
    """A running `ercot-fast serve`; stop() ends it and returns its log."""

    def __init__(self, args, env):
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        env = {**os.environ, **env}
        if "JSON_ADDR" in env:  # the address comes from the environment
            env["JSON_ADDR"] = f"127.0.0.1:{self.port}"
        else:
            args = ["--json-addr", f"127.0.0.1:{self.port}", *args]
        self.proc = subprocess.Popen(
            [ERCOT_FAST, "serve", *args],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )

    def wait_ready(self, timeout=120):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise AssertionError(f"serve exited with {self.proc.returncode}:\n{self.proc.stdout.read()}")
            try:
                return fetch(self.base + "/api/health")
            except OSError:
                time.sleep(0.2)
        raise AssertionError("serve did not answer in time")

    def stop(self, sig=signal.SIGTERM):
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        return self.proc.stdout.read()


@pytest.fixture
def serve():
    running = []

    def start(*args, env=None):
        served = Served(list(args), env or {})
        running.append(served)
        return served

    yield start
    for served in running:
        served.stop(signal.SIGKILL)


@pytest.mark.parametrize("worker_class", ["meinheld", "sync"])
def test_serve_real_data(serve, utc_dir, worker_class):
    served = serve("--data-dir", str(utc_dir), "--workers", "2", "--worker-class", worker_class)
    status, _, body = served.wait_ready()
    assert status == 200 and json.loads(body)["status"] == "healthy"
    status, headers, body = fetch(
        served.base + "/api/prices?start_date=2020-11-01&end_date=2020-11-01&hubs=HB_NORTH&price_type=day_ahead"
    )
    assert status == 200 and headers["Content-Type"] == "application/json"
    prices = json.loads(body)
    assert len(prices["timestamps"]) == 25
    assert prices["data"][0]["prices"][1:3] == [21.26, 21.08]
    status, _, body = fetch(served.base + "/api/prices?start_date=2020-11-01&end_date=2020-11-01&hubs=NOPE&price_type=da")
    assert status == 400 and "NOPE" in json.loads(body)["error"]
    log = served.stop()  # SIGTERM: a clean, complete stop
    assert served.proc.returncode == 0, log
    assert "Shutting down: Master" in log
    assert f"worker: {'meinheld' if worker_class == 'meinheld' else 'sync'}" in log


def test_serve_settings_from_environment(serve, utc_dir):
    served = serve(env={"DATA_DIR": str(utc_dir), "WORKERS": "1", "WORKER_CLASS": "sync", "JSON_ADDR": "set below"})
    status, _, _ = served.wait_ready()
    assert status == 200
    log = served.stop(signal.SIGINT)  # Ctrl-C stops it cleanly too
    assert served.proc.returncode == 0, log
    assert f"data_dir={utc_dir}" in log and "workers=1" in log and "worker_class=sync" in log
    assert f"json_addr=127.0.0.1:{served.port}" in log


def test_serve_without_data_dir_uses_demo_data(serve, tmp_path):
    env = {"XDG_CACHE_HOME": str(tmp_path), "DATA_DIR": "", "WORKERS": "1"}  # empty DATA_DIR: unset
    served = serve(env=env)
    status, _, body = served.wait_ready()
    health = json.loads(body)
    assert status == 200 and "synthetic" in health["data"]
    status, _, body = fetch(served.base + "/api/available_hubs")
    assert len(json.loads(body)) == 20
    log = served.stop()
    assert "generating SYNTHETIC demo data" in log
    assert (tmp_path / "ercot_fast" / "demo-data-v1" / "flattened").is_dir()


def test_bad_data_dir_is_a_clear_error(tmp_path):
    result = subprocess.run(
        [ERCOT_FAST, "serve", "--data-dir", str(tmp_path / "missing")],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode != 0
    assert "does not exist" in result.stderr and "--data-dir" in result.stderr


def test_help_names_every_flag():
    text = build_parser()._subparsers._group_actions[0].choices["serve"].format_help()
    for flag in ("--data-dir", "--json-addr", "--workers", "--worker-class", "--max-range-days", "DATA_DIR", "JSON_ADDR"):
        assert flag in text
