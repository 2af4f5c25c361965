"""What the benchmark scripts of bench/ share, written once.

- data: the demo-data bootstrap (a temporary folder, the demo data written into
  it when no --data-dir is given), the settlement points of ERCOT's demo and
  report data, the dashboards' tile query;
- timing: one call timed, competitors raced round-robin for their best time;
- servers: free ports, ``ercot-fast serve``'s command line, a server process in
  its own process group (pinned to CPUs, waited for until it answers, stopped
  with SIGTERM then SIGKILL), the CPU split between servers and load generator;
- results: the machine description, the command that reproduces a run, the
  results JSON written.

Nothing here imports ercot_fast: the scripts import what they measure and hand
it in (the demo-data writer, for one).
"""
import contextlib
import json
import os
import platform
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

HERE = Path(__file__).resolve().parent
RESULTS = HERE / "results"
BIN = Path(sys.executable).parent  # this virtualenv's ercot-fast, gunicorn (and roapi, when installed)
HOST = "127.0.0.1"

# --- data ---------------------------------------------------------------------

HUBS = ["HB_BUSAVG", "HB_HOUSTON", "HB_HUBAVG", "HB_NORTH", "HB_PAN", "HB_SOUTH", "HB_WEST"]
LOAD_ZONES = ["LZ_AEN", "LZ_CPS", "LZ_HOUSTON", "LZ_LCRA", "LZ_NORTH", "LZ_RAYBN", "LZ_SOUTH", "LZ_WEST"]
DC_TIES = ["DC_E", "DC_L", "DC_N", "DC_R", "DC_S"]
SETTLEMENT_POINTS = HUBS + LOAD_ZONES + DC_TIES  # the 20 of the demo data
# PERF.md's users, as query strings of /api/prices inside the demo data (2019-2024): the
# dashboards' tile and page, the analyst's year, the quant's every 15-minute price
QUERIES = {
    "tile": "start_date=2024-07-08&end_date=2024-07-14&hubs=HB_NORTH,HB_HOUSTON&price_type=day_ahead",
    "page": "start_date=2024-07-01&end_date=2024-07-31&hubs=HB_NORTH,HB_HOUSTON,HB_SOUTH,HB_WEST,HB_PAN"
            "&price_type=combined",
    "analyst": "start_date=2023-01-01&end_date=2023-12-31&price_type=day_ahead&hubs=" + ",".join(sorted(SETTLEMENT_POINTS)),
    "quant": "start_date=2019-01-01&end_date=2024-12-31&price_type=real_time&resolution=15min&hubs="
             + ",".join(sorted(SETTLEMENT_POINTS)),
}


@contextlib.contextmanager
def scratch(prefix, parent=None):
    """A temporary folder (a Path) under ``parent`` (default: the system's),
    removed with everything in it when the block ends, however it ends."""
    with tempfile.TemporaryDirectory(prefix=prefix, dir=parent, ignore_cleanup_errors=True) as folder:
        yield Path(folder)


def data_dir(given, scratch_dir, write_demo_data):
    """The data directory to measure: ``given`` (--data-dir), or else the demo
    data written by ``write_demo_data`` (ercot_fast's) into ``scratch_dir``/demo."""
    if given is not None:
        return str(given)
    folder = str(Path(scratch_dir) / "demo")
    write_demo_data(folder)
    return folder


def add_data_dir_option(parser):
    parser.add_argument("--data-dir", help="data directory (default: the demo data, generated into a temp folder)")


# --- timing -------------------------------------------------------------------


def timed(call):
    """(seconds that ``call()`` took, what it returned)."""
    started = time.perf_counter()
    value = call()
    return time.perf_counter() - started, value


def calls_per_round(competitors, seconds=0.1):
    """How many calls of each competitor make one timed round of about
    ``seconds`` (at least one), from one untimed call each."""
    return {name: max(1, int(seconds / max(timed(call)[0], 1e-9))) for name, call in competitors.items()}


def best_of(competitors, repeat, numbers=None):
    """Best seconds per call of each competitor over ``repeat`` rounds, run
    round-robin so that all share the machine's state, and what each returned
    last. ``numbers``: calls per round of each (default one)."""
    best, returned = dict.fromkeys(competitors, float("inf")), {}
    for _ in range(repeat):
        for name, call in competitors.items():
            number = numbers[name] if numbers else 1
            seconds, returned[name] = timed(lambda: _repeated(call, number))
            best[name] = min(best[name], seconds / number)
    return best, returned


def _repeated(call, number):
    """``call()`` ``number`` times; what it returned last."""
    for _ in range(number):
        value = call()
    return value


# --- servers ------------------------------------------------------------------


def free_port():
    """A TCP port of HOST that nothing listens on now."""
    with socket.socket() as sock:
        sock.bind((HOST, 0))
        return sock.getsockname()[1]


def free_addr():
    """HOST:PORT with a port free now."""
    return f"{HOST}:{free_port()}"


def split_cpus(most=None):
    """(server CPUs, client CPUs): the servers on the first half of the CPUs
    this process may use, the client (load generator) on the other, as PERF.md
    puts the load generator on its own core; at most ``most`` CPUs each (the
    first of each half); (None, None) on one CPU."""
    if not hasattr(os, "sched_getaffinity"):
        return None, None
    cpus = sorted(os.sched_getaffinity(0))
    if len(cpus) < 2:
        return None, None
    half = len(cpus) // 2
    return set(cpus[:half][:most]), set(cpus[half:][:most])


SERVER_CPUS, CLIENT_CPUS = split_cpus(most=1)  # CPU 0 for the server under test, CPU 1 for the load


def on_cpus(cpus):
    """A subprocess preexec_fn that pins the child (and what it forks) to
    ``cpus``; None when ``cpus`` is None."""
    return (lambda: os.sched_setaffinity(0, cpus)) if cpus else None


def serve_command(data_dir, json_addr, flight_addr, workers=1, *options, stream_addr=None):
    """``ercot-fast serve`` as users run it, on the given addresses (the
    stream's, ``stream_addr``, else a free one: the HTTP port + 1 may be
    another server's), logging warnings only."""
    return [str(BIN / "ercot-fast"), "serve", "--data-dir", str(data_dir), "--json-addr", json_addr,
            "--flight-addr", flight_addr, "--stream-addr", stream_addr or free_addr(), "--workers", str(workers),
            "--log-level", "warning", *options]


def http_get(url, timeout=30):
    """The body of a GET of ``url``."""
    with urllib.request.urlopen(url, timeout=timeout) as response:
        return response.read()


class Server:
    """A server process in a session (process group) of its own, so that
    stopping it stops what it forked too. Use as a context manager: the block
    waits for it (``wait_until``, ``wait_for_http``) and uses it; leaving the
    block stops it, however the block ends."""

    def __init__(self, name, command, env=None, cpus=None, quiet=True, capture_stderr=False):
        self.name = name
        self.started = time.perf_counter()
        output = subprocess.DEVNULL if quiet else None
        self.proc = subprocess.Popen(
            [str(part) for part in command],
            env={**os.environ, **(env or {})},
            stdout=output,
            stderr=subprocess.PIPE if capture_stderr else output,
            text=capture_stderr,
            start_new_session=True,
            preexec_fn=on_cpus(cpus),
        )

    def __enter__(self):
        return self

    def __exit__(self, *exc_info):
        self.stop()

    def wait_until(self, probe, errors=(OSError,), timeout=180, interval=0.3):
        """Call ``probe`` until it returns without raising one of ``errors``;
        returns the seconds from the start of the process. Raises if the
        process exits first or ``timeout`` seconds pass."""
        deadline = time.monotonic() + timeout
        while True:
            try:
                probe()
                return time.perf_counter() - self.started
            except errors:
                if self.proc.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"{self.name} did not start") from None
                time.sleep(interval)

    def wait_for_http(self, url, **options):
        """``wait_until`` a GET of ``url`` answers (2xx)."""
        return self.wait_until(lambda: http_get(url, timeout=5), **options)

    def stop(self, timeout=20):
        """SIGTERM to the process group; SIGKILL after ``timeout`` seconds."""
        self._signal_group(signal.SIGTERM)
        try:
            self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self._signal_group(signal.SIGKILL)
            self.proc.wait()

    def _signal_group(self, signum):
        with contextlib.suppress(ProcessLookupError):  # the whole group has exited already
            os.killpg(self.proc.pid, signum)


# --- results ------------------------------------------------------------------

MACHINE = {
    "cpus": os.cpu_count,
    "processor": platform.machine,
    "python": platform.python_version,
    "platform": platform.platform,
}


def machine(*fields, **versions):
    """The machine a run was measured on, for the results JSON: the named
    ``fields`` of MACHINE, then ``versions`` (package name: version)."""
    return {**{field: MACHINE[field]() for field in fields}, **versions}


def command_line(script, args, skip=()):
    """The command that reproduces a run: ``python bench/SCRIPT`` and every
    option of ``args`` (an argparse Namespace) that is set, but those in ``skip``."""
    words = ["python", f"bench/{script}"]
    for key, value in vars(args).items():
        if key in skip or value is None or value is False:
            continue
        words.append(f"--{key.replace('_', '-')}")
        if value is not True:
            words.append(str(value))
    return " ".join(words)


def write_results(path, report):
    """``report`` as indented JSON to ``path`` (its folder made if need be);
    nowhere when ``path`` is None (an optional --out not given)."""
    if path is None:
        return
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(report, indent=2) + "\n")
