"""HTTP throughput, ours against the baselines, side by side in one run (PERF.md).

Each server gets one gunicorn worker pinned to CPU 0; wrk runs pinned to CPU 1.
Servers run one at a time, on the same demo data, with the same worker class.

    python bench/bench_http.py [--data-dir DIR] [--duration 5] [--out bench/results/http.json]

Needs wrk (Debian package `wrk`); ROAPI is included when `roapi` is installed
beside this Python (pip install roapi).
"""
import argparse
import re
import subprocess
import time
from functools import partial
from urllib.parse import quote

import _harness as harness
from ercot_fast.demo import write_demo_data

UNIQUE = str(harness.HERE / "unique_query.lua")
QUERIES = {
    # PERF.md's users; dates inside the demo data (2019-2024)
    "tile": harness.TILE_QUERY,
    "page": "start_date=2024-07-01&end_date=2024-07-31&hubs=HB_NORTH,HB_HOUSTON,HB_SOUTH,HB_WEST,HB_PAN&price_type=combined",
    "analyst": "start_date=2023-01-01&end_date=2023-12-31&price_type=day_ahead&hubs="
    + ",".join(sorted(harness.SETTLEMENT_POINTS)),
}
SERVER_CPUS, WRK_CPUS = harness.split_cpus(most=1)  # CPU 0 and CPU 1


def _seconds(text):
    value, unit = re.fullmatch(r"([\d.]+)(us|ms|s)", text).groups()
    return float(value) * {"us": 1e-6, "ms": 1e-3, "s": 1.0}[unit]


def wrk(url, connections, duration, script=None, headers=()):
    """requests/s, p50 and p99 latency (s) of wrk with one thread, sending ``headers`` ("Name: value")."""
    out = subprocess.run(
        ["wrk", "-t1", f"-c{connections}", f"-d{duration}s", "--latency", *(["-s", script] if script else []),
         *[f"-H{header}" for header in headers], url],
        capture_output=True,
        text=True,
        check=True,
        preexec_fn=harness.on_cpus(WRK_CPUS),
    ).stdout
    errors = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    if errors:
        raise RuntimeError(f"{url}: {errors.group(1)} error responses\n{out}")
    return {
        "requests_per_s": float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1)),
        "p50_s": _seconds(re.search(r"^\s+50%\s+(\S+)", out, re.M).group(1)),
        "p99_s": _seconds(re.search(r"^\s+99%\s+(\S+)", out, re.M).group(1)),
    }


def add_wrk_options(parser):
    """--data-dir, and how wrk measures: --duration, --warmup, --connections."""
    harness.add_data_dir_option(parser)
    parser.add_argument("--duration", type=int, default=5, help="seconds per measurement (default 5)")
    parser.add_argument("--warmup", type=int, default=2, help="seconds of warm-up (default 2)")
    parser.add_argument("--connections", type=int, default=32, help="wrk connections (default 32)")


def measure(name, addr, path, args, script=None):
    url = f"http://{addr}{path}"
    wrk(url, args.connections, args.warmup, script)
    result = wrk(url, args.connections, args.duration, script)
    result["one_connection_p99_s"] = wrk(url, 1, args.duration, script)["p99_s"]
    result["body_bytes"] = len(harness.http_get(url))
    print(f"  {name:<28} {path[:50] + (' (unique)' if script else ''):<60} {result['requests_per_s']:>10.0f} req/s  p99 {result['p99_s'] * 1e3:.2f} ms"
          f"  p99@1conn {result['one_connection_p99_s'] * 1e3:.3f} ms", flush=True)
    return result


def measure_server(name, command_at, ready_path, paths, args, env=None):
    """Start a server on SERVER_CPUS (``command_at(HOST:PORT)``, on a free
    port), wait until ``ready_path`` answers, then {key: measure} of each of
    ``paths`` ({key: (path, wrk script or None)}); stop it."""
    addr = harness.free_addr()
    with harness.Server(name, command_at(addr), env=env, cpus=SERVER_CPUS) as server:
        server.wait_for_http(f"http://{addr}{ready_path}")
        return {key: measure(name, addr, path, args, script) for key, (path, script) in paths.items()}


def roapi_url(query_name):
    """The same day-ahead slice asked of ROAPI (REST: columns + filter), from
    the table of the query's year."""
    params = dict(p.split("=", 1) for p in QUERIES[query_name].split("&"))
    from ercot_fast.timeutil import parse_instant

    start = parse_instant(params["start_date"], "start_date", False)
    end = parse_instant(params["end_date"], "end_date", True)
    iso = lambda ms: quote(f"'{time.strftime('%Y-%m-%dT%H:%M:%S', time.gmtime(ms / 1000))}'")  # noqa: E731
    return (f"/api/tables/day_ahead_{params['start_date'][:4]}?columns=datetime_ts,{params['hubs']}"
            f"&filter%5Bdatetime_ts%5Dgte={iso(start)}&filter%5Bdatetime_ts%5Dlte={iso(end)}")


def price_path(name):
    return "/api/prices?" + QUERIES[name]


def prices(*names):
    """{name: (price_path(name), no wrk script)}."""
    return {name: (price_path(name), None) for name in names}


def gunicorn(args, app, addr):
    """One gunicorn worker of --worker-class serving ``app`` of baseline_apps on ``addr``."""
    worker = {"meinheld": "meinheld.gmeinheld.MeinheldWorker", "sync": "sync"}[args.worker_class]
    return [harness.BIN / "gunicorn", "--chdir", harness.HERE, "-w", "1", "-k", worker, "--no-control-socket",
            "-b", addr, f"baseline_apps:{app}"]


def ours(args, data_dir, cache_mb, addr):
    """``ercot-fast serve``, one worker of --worker-class, its response cache ``cache_mb`` MB."""
    return harness.serve_command(data_dir, addr, harness.free_addr(), 1, "--worker-class", args.worker_class,
                                 "--response-cache-mb", cache_mb)


def roapi(data_dir, addr):
    """ROAPI serving the day-ahead files of 2023 and 2024 (REST on ``addr``)."""
    tables = []
    for year in (2023, 2024):
        tables += ["-t", f"day_ahead_{year}={data_dir}/flattened/DA_prices_{year}.parquet"]
    return [harness.BIN / "roapi", "-a", addr, "-p", harness.free_addr(), "--addr-flight-sql", harness.free_addr(),
            *tables]


def measure_all(args, data_dir):
    """Every server, one at a time: {server: {query: measure}} (hello_world: one measure)."""
    hello = measure_server("hello-world Falcon", partial(gunicorn, args, "hello"), "/", {"/": ("/", None)}, args)
    results = {"hello_world": hello["/"]}
    for label, cache_mb in (("ours, response cache off", "0"), ("ours, response cache on", "64")):
        paths = prices(*QUERIES)
        if cache_mb == "0":  # the path of a query string seen for the first time
            paths["tile_unique"] = (price_path("tile"), UNIQUE)
        results[label] = measure_server(label, partial(ours, args, data_dir, cache_mb), "/api/health", paths, args)
    results["straightforward"] = measure_server(
        "straightforward numpy+orjson", partial(gunicorn, args, "straightforward"), price_path("tile"),
        prices("tile", "analyst"), args, env={"BENCH_DATA_DIR": data_dir})
    if (harness.BIN / "roapi").exists():
        paths = {name: (roapi_url(name), None) for name in ("tile", "analyst")}
        results["roapi"] = measure_server("ROAPI", partial(roapi, data_dir), "/api/schema", paths, args)
    return results


def ratios_of(results):
    hello = results["hello_world"]["requests_per_s"]
    off, on = results["ours, response cache off"], results["ours, response cache on"]
    ratios = {
        "tile_cache_off_vs_hello": off["tile"]["requests_per_s"] / hello,
        "tile_cache_on_vs_hello": on["tile"]["requests_per_s"] / hello,
        "tile_unique_queries_vs_hello": off["tile_unique"]["requests_per_s"] / hello,
        "tile_cache_off_vs_straightforward": off["tile"]["requests_per_s"] / results["straightforward"]["tile"]["requests_per_s"],
        "analyst_cache_off_vs_straightforward": off["analyst"]["requests_per_s"] / results["straightforward"]["analyst"]["requests_per_s"],
        "analyst_cache_on_vs_straightforward": on["analyst"]["requests_per_s"] / results["straightforward"]["analyst"]["requests_per_s"],
    }
    if "roapi" in results:
        ratios["tile_cache_off_vs_roapi"] = off["tile"]["requests_per_s"] / results["roapi"]["tile"]["requests_per_s"]
        ratios["analyst_cache_off_vs_roapi"] = off["analyst"]["requests_per_s"] / results["roapi"]["analyst"]["requests_per_s"]
    return ratios


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_wrk_options(parser)
    parser.add_argument("--worker-class", default="meinheld", choices=("meinheld", "sync"))
    parser.add_argument("--out", default=str(harness.RESULTS / "http.json"))
    args = parser.parse_args()

    print("servers, one at a time; wrk -t1, one worker each", flush=True)
    with harness.scratch("bench-http-") as scratch:
        results = measure_all(args, harness.data_dir(args.data_dir, scratch, write_demo_data))
    ratios = ratios_of(results)
    print("\nratios:")
    for name, value in ratios.items():
        print(f"  {name:<40} {value:6.2f}")
    report = {
        "machine": harness.machine("cpus", "processor", "python"),
        "settings": vars(args),
        "results": results,
        "ratios": ratios,
    }
    harness.write_results(args.out, report)


if __name__ == "__main__":
    main()
