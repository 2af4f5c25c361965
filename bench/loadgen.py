"""HTTP load, one way for every benchmark: wrk when it is installed (Debian's
``wrk``: ``apt-get install wrk``), else a Python load generator of threads,
which says so (it is slower than the servers it drives: its figures are the
generator's limit as much as the server's).

``drive`` measures one URL at a number of kept-alive connections for some
seconds, the same query string repeated or a fresh one per request (an ignored
``nonce`` parameter counting up: ``unique_query.lua`` for wrk), and returns
requests/s, p50 and p99 latency. A non-2xx answer is an error: a benchmark of
error pages measures nothing.
"""
import http.client
import re
import shutil
import statistics
import subprocess
import threading
import time
from pathlib import Path
from urllib.parse import urlsplit

import _harness as harness

WRK = shutil.which("wrk")
UNIQUE = str(harness.HERE / "unique_query.lua")
GENERATORS = ("wrk", "python")
TIMEOUT_S = 30  # a request slower than this is an error (the heavy pulls at 64 connections queue)


def choose(requested=None):
    """The load generator to use: ``requested`` ("wrk" or "python"), or wrk
    when it is installed. Raises SystemExit when wrk is asked for and absent."""
    if requested == "wrk" and not WRK:
        raise SystemExit("error: wrk is not installed (Debian: apt-get install wrk); or pass --load-generator python")
    return requested or ("wrk" if WRK else "python")


def add_wrk_options(parser):
    """--data-dir, and how wrk measures: --duration, --warmup, --connections
    (the scripts that drive wrk alone: its headers, HTTPS)."""
    harness.add_data_dir_option(parser)
    parser.add_argument("--duration", type=int, default=5, help="seconds per measurement (default 5)")
    parser.add_argument("--warmup", type=int, default=2, help="seconds of warm-up (default 2)")
    parser.add_argument("--connections", type=int, default=32, help="wrk connections (default 32)")


def wrk(url, connections, duration, script=None, headers=()):
    """requests/s, p50 and p99 latency (s) of wrk with one thread (on
    harness.CLIENT_CPUS), sending ``headers`` ("Name: value")."""
    out = subprocess.run(
        [WRK or "wrk", "-t1", f"-c{connections}", f"-d{duration}s", f"--timeout={TIMEOUT_S}s", "--latency",
         *(["-s", script] if script else []), *[f"-H{header}" for header in headers], url],
        capture_output=True,
        text=True,
        check=True,
        preexec_fn=harness.on_cpus(harness.CLIENT_CPUS),
    ).stdout
    errors = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    if errors:
        requests = re.search(r"(\d+) requests in", out)
        raise RuntimeError(f"{errors.group(1)} of {requests.group(1) if requests else '?'} answers were errors "
                           f"(wrk -c{connections}{' with ' + Path(script).name if script else ''})\n{out}")
    socket_errors = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out)
    return {
        "requests_per_s": float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1)),
        "p50_s": _seconds(re.search(r"^\s+50%\s+(\S+)", out, re.M).group(1)),
        "p99_s": _seconds(re.search(r"^\s+99%\s+(\S+)", out, re.M).group(1)),
        "socket_errors": sum(map(int, socket_errors.groups())) if socket_errors else 0,
    }


def _seconds(text):
    value, unit = re.fullmatch(r"([\d.]+)(us|ms|s|m)", text).groups()
    return float(value) * {"us": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0}[unit]


def drive(url, connections, seconds, fresh=False, generator="wrk"):
    """Load ``url`` for ``seconds`` over ``connections`` kept-alive connections,
    a fresh query string per request when ``fresh``: requests/s, p50_s, p99_s."""
    if generator == "wrk":
        return wrk(url, connections, seconds, UNIQUE if fresh else None)
    return python_load(url, connections, seconds, fresh)


def python_load(url, connections, seconds, fresh=False):
    """What ``wrk`` measures, from ``connections`` threads of this process, each
    with its own kept-alive connection (http.client)."""
    parts = urlsplit(url)
    target = parts.path + (f"?{parts.query}" if parts.query else "")
    joiner = "&" if parts.query else "?"
    counter = iter(range(1, 1 << 62))  # next() of a range iterator is atomic under the GIL
    latencies, problems = [], []
    deadline = time.perf_counter() + seconds

    def connection():
        conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=TIMEOUT_S)
        mine = []
        try:
            while time.perf_counter() < deadline and not problems:
                path = f"{target}{joiner}nonce={next(counter)}" if fresh else target
                started = time.perf_counter()
                conn.request("GET", path)
                response = conn.getresponse()
                response.read()
                if not 200 <= response.status < 400:
                    problems.append(f"answered {response.status}")
                mine.append(time.perf_counter() - started)
        except OSError as exc:
            problems.append(f"{exc}")
        finally:
            conn.close()
            latencies.extend(mine)  # list.extend is atomic under the GIL

    started = time.perf_counter()
    threads = [threading.Thread(target=connection) for _ in range(connections)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    elapsed = time.perf_counter() - started
    if problems:
        raise RuntimeError(f"{problems[0]} (Python load, {connections} connections)")
    cuts = statistics.quantiles(latencies, n=100, method="inclusive") if len(latencies) > 1 else latencies * 99
    return {"requests_per_s": len(latencies) / elapsed, "p50_s": cuts[49], "p99_s": cuts[98], "socket_errors": 0}
