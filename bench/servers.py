"""The HTTP servers measured side by side, on the same data, one gunicorn
worker each of the same class (meinheld, or sync: ``worker_class``; ROAPI: its
own threads), and how each is asked PERF.md's queries.

- ours: ``ercot-fast serve`` as users run it (response cache on, the default),
  the compiled kernels; the same with the response cache off; the same with
  the pure-Python twins forced (``ERCOT_FAST_KERNELS=python``: what the
  kernels buy);
- hello-world: Falcon's fixed small body under the same worker (the ceiling);
- straightforward: numpy.searchsorted + orjson (``baseline_apps``);
- ROAPI (``pip install roapi``), when installed: the same slices of the same
  Parquet files through its REST ``columns`` and ``filter[...]`` parameters.

Each server's answer is turned into numbers (``numbers``: series name -> list
of prices, and the count of instants), so that ``--quick`` can check that all
answer the same query with the same numbers.
"""
import json
import time
from typing import Callable, NamedTuple
from urllib.parse import parse_qsl, quote

import _harness as harness

HELLO_PATH = "/?ceiling=1"  # a query string for a fresh one to extend (&nonce=...)


class HttpServer(NamedTuple):
    key: str  # the results' name
    label: str  # the tables' name
    command: Callable  # (addr, data_dir) -> argv
    ready: str  # a path that answers 200 once the server serves
    path: Callable  # query name -> the path asking it, or None: not a query this server answers
    env: dict = {}


WORKER_CLASSES = {"meinheld": "meinheld.gmeinheld.MeinheldWorker", "sync": "sync"}  # ours' names -> gunicorn's
worker_class = "meinheld"  # of every server under gunicorn (``python -m bench --worker-class``)


def ours_command(cache_mb=None):
    """(addr, data_dir) -> ``ercot-fast serve``, one worker of ``worker_class``, its response cache ``cache_mb`` MB
    (None: the default)."""
    def command(addr, data_dir):
        options = ["--worker-class", worker_class] + (["--response-cache-mb", str(cache_mb)] if cache_mb is not None else [])
        return harness.serve_command(data_dir, addr, harness.free_addr(), 1, *options)
    return command


def price_path(query):
    """The path of PERF.md's ``query`` on /api/prices."""
    return f"/api/prices?{harness.QUERIES[query]}"


def _gunicorn(app):
    def command(addr, data_dir):
        return [harness.BIN / "gunicorn", "--chdir", harness.HERE, "-w", "1", "-k", WORKER_CLASSES[worker_class],
                "--no-control-socket", "-b", addr, f"baseline_apps:{app}"]
    return command


def _straightforward_path(query):
    return None if query == "page" else price_path(query)  # no combined DA + RT + AS: that is ours' alone


def _roapi_command(addr, data_dir):
    """ROAPI serving the day-ahead files of the years the queries ask (REST on ``addr``)."""
    tables = []
    for year in _roapi_years():
        tables += ["-t", f"day_ahead_{year}={data_dir}/flattened/DA_prices_{year}.parquet"]
    return [harness.BIN / "roapi", "-a", addr, "-p", harness.free_addr(), "--addr-flight-sql", harness.free_addr(),
            *tables]


def _roapi_years():
    return sorted({dict(parse_qsl(harness.QUERIES[q]))["start_date"][:4] for q in ("tile", "analyst")})


def _roapi_path(query):
    """The same day-ahead slice asked of ROAPI, from the table of the query's
    year; None for the queries it cannot answer in one table (combined, six years)."""
    if query not in ("tile", "analyst"):
        return None
    from ercot_fast.timeutil import parse_instant

    params = dict(parse_qsl(harness.QUERIES[query]))
    start = parse_instant(params["start_date"], "start_date", False)
    end = parse_instant(params["end_date"], "end_date", True)
    iso = lambda ms: quote(f"'{time.strftime('%Y-%m-%dT%H:%M:%S', time.gmtime(ms / 1000))}'")  # noqa: E731
    return (f"/api/tables/day_ahead_{params['start_date'][:4]}?columns=datetime_ts,{params['hubs']}"
            f"&filter%5Bdatetime_ts%5Dgte={iso(start)}&filter%5Bdatetime_ts%5Dlte={iso(end)}")


OURS = HttpServer("ours", "ours (compiled kernels)", ours_command(), "/api/ready", price_path)
HELLO = HttpServer("hello_world", "hello-world Falcon (the ceiling)", _gunicorn("hello"), "/",
                   lambda query: HELLO_PATH)
SERVERS = (
    HELLO,
    OURS,
    HttpServer("ours_cache_off", "ours, response cache off", ours_command(cache_mb=0), "/api/ready",
               lambda query: price_path(query) if query in ("tile", "analyst") else None),
    HttpServer("ours_twins", "ours, pure-Python twins", ours_command(), "/api/ready",
               lambda query: None if query == "quant" else price_path(query),  # the twins take seconds a pull
               {"ERCOT_FAST_KERNELS": "python"}),
    HttpServer("straightforward", "straightforward numpy + orjson", _gunicorn("straightforward"),
               price_path("tile"), _straightforward_path),
    HttpServer("roapi", "ROAPI", _roapi_command, "/api/schema", _roapi_path),
)


def available():
    """(servers that can run here, {key: why not} of the others)."""
    if (harness.BIN / "roapi").exists():
        return SERVERS, {}
    return tuple(s for s in SERVERS if s.key != "roapi"), {"roapi": "not installed (pip install roapi)"}


def start(server, data_dir):
    """``server`` started on a free port of HOST, pinned to SERVER_CPUS: a
    (harness.Server, "HOST:PORT"); wait for it with ``ready``."""
    addr = harness.free_addr()
    env = {**server.env, "BENCH_DATA_DIR": str(data_dir)}
    return harness.Server(server.label, server.command(addr, data_dir), env=env, cpus=harness.SERVER_CPUS), addr


def numbers(server, body):
    """{series: [prices]} and the count of instants in an answer of ``server``."""
    document = json.loads(body)
    if server.key == "roapi":  # rows of {column: value}, nulls left out
        series = sorted({name for row in document for name in row} - {"datetime_ts"})
        return {name: [row.get(name) for row in document] for name in series}, len(document)
    return {entry["hub"]: entry["prices"] for entry in document["data"]}, len(document["timestamps"])
