"""`ercot-fast serve` as a user runs it: real gunicorn (+ meinheld) and the
Arrow Flight child, 127.0.0.1, free ports, queried over HTTP and Flight, always
stopped."""
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time

import pyarrow as pa
import pyarrow.flight as flight
import pytest

from ercot_fast.cli import build_parser
from serving import ERCOT_FAST, Served, fetch, free_port

def gone(pid=None, group=None, timeout=10):
    """True once no process has ``pid`` (or none is left in ``group``)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            os.killpg(group, 0) if group else os.kill(pid, 0)
        except ProcessLookupError:
            return True
        time.sleep(0.1)
    return False


def flight_refuses(location):
    with flight.connect(location) as client:
        try:
            list(client.list_actions(flight.FlightCallOptions(timeout=2)))
        except (flight.FlightUnavailableError, flight.FlightTimedOutError):
            return True
    return False


@pytest.fixture
def serve():
    running = []

    def start(*args, env=None):
        served = Served(list(args), env or {})
        running.append(served)
        return served

    yield start
    for served in running:
        served.kill_all()


@pytest.mark.parametrize("worker_class", ["meinheld", "sync"])
def test_serve_real_data(serve, utc_dir, worker_class):
    served = serve("--data-dir", str(utc_dir), "--workers", "2", "--worker-class", worker_class)
    status, _, body = served.wait_ready()
    assert status == 200 and json.loads(body)["status"] == "healthy"
    status, headers, body = fetch(
        served.base + "/api/prices?start_date=2020-11-01&end_date=2020-11-01&hubs=HB_NORTH&price_type=day_ahead"
    )
    assert status == 200 and headers["Content-Type"] == "application/json"
    # no library or version named: meinheld is built by docker/install.sh with our Server header
    assert headers["Server"] == ("ercot-fast" if worker_class == "meinheld" else "gunicorn"), headers["Server"]
    prices = json.loads(body)
    assert len(prices["timestamps"]) == 25
    assert prices["data"][0]["prices"][1:3] == [21.26, 21.08]
    status, _, body = fetch(served.base + "/api/prices?start_date=2020-11-01&end_date=2020-11-01&hubs=NOPE&price_type=da")
    assert status == 400 and "NOPE" in json.loads(body)["error"]
    # Flight, beside it, over the same data: the same answer
    with flight.connect(served.flight_location) as client:
        ticket = {"start_date": "2020-11-01", "end_date": "2020-11-01", "hubs": ["HB_NORTH"], "price_type": "day_ahead"}
        table = client.do_get(flight.Ticket(json.dumps({**ticket, "layout": "wide"}).encode())).read_all()
        assert table.column("HB_NORTH").to_pylist() == prices["data"][0]["prices"]
        assert [t.strftime("%Y-%m-%dT%H:%M:%SZ") for t in table.column("datetime").to_pylist()] == prices["timestamps"]
        with pytest.raises(pa.ArrowInvalid, match="unknown settlement point: NOPE"):
            client.do_get(flight.Ticket(json.dumps({**ticket, "hubs": ["NOPE"]}).encode())).read_all()
        assert client.do_get(flight.Ticket(b"ercot_prices")).read_all().num_rows == 22463 * 15
    flight_pid = served.flight_pid()
    log = served.stop()  # SIGTERM: a clean, complete stop of both servers
    assert served.proc.returncode == 0, log
    assert "Shutting down: Master" in log
    assert f"Arrow Flight serving on grpc://127.0.0.1:{served.flight_port} (pid {flight_pid}" in log
    assert f"Arrow Flight server (pid {flight_pid}) stopping on SIGTERM" in log
    assert gone(flight_pid) and gone(group=served.proc.pid)
    assert flight_refuses(served.flight_location)
    assert f"Using worker: ercot_fast.serve.worker.{'MeinheldWorker' if worker_class == 'meinheld' else 'SyncWorker'}" in log


def test_serve_settings_from_environment(serve, utc_dir):
    env = {"DATA_DIR": str(utc_dir), "WORKERS": "1", "WORKER_CLASS": "sync", "JSON_ADDR": "set below", "FLIGHT_ADDR": "too"}
    served = serve(env=env)
    status, _, _ = served.wait_ready()
    assert status == 200
    flight_pid = served.flight_pid()
    log = served.stop(signal.SIGINT, group=True)  # Ctrl-C in a terminal stops all of it cleanly
    assert served.proc.returncode == 0, log
    assert f"data_dir={utc_dir}" in log and "workers=1" in log and "worker_class=sync" in log
    assert f"json_addr=127.0.0.1:{served.port}" in log
    assert f"flight_addr=127.0.0.1:{served.flight_port}" in log
    assert f"Arrow Flight server (pid {flight_pid}) stopping on SIGINT" in log
    assert gone(group=served.proc.pid), "a process of serve outlived Ctrl-C"


def test_flight_child_is_restarted_after_a_crash_and_follows_reloads(serve, utc_dir, tmp_path):
    data = tmp_path / "data"
    (data / "flattened").mkdir(parents=True)
    for day_ahead in (utc_dir / "flattened").glob("DA_prices_*.parquet"):
        shutil.copy(day_ahead, data / "flattened")
    served = serve("--data-dir", str(data), "--workers", "1", "--worker-class", "sync")
    served.wait_ready()
    first = served.flight_pid()
    os.kill(first, signal.SIGKILL)  # a crash
    second = served.next_flight_pid(first)  # the master noticed, logged it and started another
    assert gone(first)

    def real_time_rows():
        with flight.connect(served.flight_location) as client:
            return client.do_get(flight.Ticket(b'{"dataset": "real_time_15min"}')).read_all().num_rows

    assert real_time_rows() == 0
    for real_time in (utc_dir / "flattened").glob("RT_prices_15min_*.parquet"):
        shutil.copy(real_time, data / "flattened")
    os.kill(served.proc.pid, signal.SIGHUP)  # reload the data: the same Flight child serves the new store
    deadline = time.monotonic() + 30
    while real_time_rows() != 8160 * 15:
        assert time.monotonic() < deadline, "the Flight child did not follow the reload"
        time.sleep(0.2)
    assert served.flight_pid() == second
    log = served.stop()
    assert served.proc.returncode == 0, log
    assert f"Arrow Flight server (pid {first}) was killed by SIGKILL; restarting it" in log
    assert f"(pid {second}) stopping on SIGTERM" in log
    assert gone(group=served.proc.pid)


def test_flight_port_in_use_is_a_clear_error(utc_dir):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = subprocess.run(
            [ERCOT_FAST, "serve", "--data-dir", str(utc_dir), "--json-addr", f"127.0.0.1:{free_port()}",
             "--flight-addr", f"127.0.0.1:{port}", "--stream-addr", f"127.0.0.1:{free_port()}", "--workers", "1",
             "--worker-class", "sync"],
            capture_output=True,
            text=True,
            timeout=120,
        )
    assert result.returncode == 1
    assert f"error: Arrow Flight cannot serve on 127.0.0.1:{port}" in result.stderr
    assert "choose another with --flight-addr or FLIGHT_ADDR" in result.stderr


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
    for flag in ("--data-dir", "--json-addr", "--flight-addr", "--workers", "--worker-class", "--max-range-days", "DATA_DIR", "JSON_ADDR", "FLIGHT_ADDR"):
        assert flag in text


@pytest.mark.parametrize("after", [0.2, 0.4, 0.5, 0.55, 0.6, 0.65, 0.7, 0.9])
def test_a_stop_signal_while_starting_stops_it(fixture_utc_dir, after):
    """Ctrl-C during the imports or the load (once seen lost inside a C
    extension's import) stops the service: exit 0, no traceback, nothing left."""
    proc = subprocess.Popen(
        [ERCOT_FAST, "serve", "--data-dir", str(fixture_utc_dir), "--json-addr", f"127.0.0.1:{free_port()}",
         "--flight-addr", f"127.0.0.1:{free_port()}", "--stream-addr", f"127.0.0.1:{free_port()}", "--workers", "1",
         "--worker-class", "sync"],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True,
    )
    time.sleep(after)
    proc.send_signal(signal.SIGINT)
    try:
        log, _ = proc.communicate(timeout=60)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        log, _ = proc.communicate()
        raise AssertionError(f"serve kept running after SIGINT {after} s into its start:\n{log}")
    assert proc.returncode == 0, log
    assert "Traceback" not in log
    assert gone(group=proc.pid)


def test_ctrl_c_while_the_command_is_still_importing_exits_quietly():
    """The console script's entry (ercot_fast.entry) holds the stop signals
    before it imports the command: here SIGINT arrives as the import begins."""
    code = (
        "import os, signal, sys\n"
        "import ercot_fast.entry as entry\n"
        "class Interrupting:\n"
        "    def find_spec(self, name, path, target=None):\n"
        "        if name == 'ercot_fast.cli':\n"
        "            os.kill(os.getpid(), signal.SIGINT)\n"
        "sys.meta_path.insert(0, Interrupting())\n"
        "entry.main()\n"
        "print('the command ran')\n"
    )
    done = subprocess.run([sys.executable, "-c", code, "serve"], capture_output=True, text=True, timeout=60)
    assert (done.returncode, done.stdout, done.stderr) == (0, "", "")
