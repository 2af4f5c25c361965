"""HTTP throughput, ours against the baselines, side by side in one run (PERF.md).

Each server gets one gunicorn worker pinned to CPU 0; wrk runs pinned to CPU 1.
Servers run one at a time, on the same demo data, with the same worker class.

    python bench/bench_http.py [--data-dir DIR] [--duration 5] [--out bench/results/http.json]

Needs wrk (Debian package `wrk`) and taskset (util-linux); ROAPI is included
when `roapi` is installed beside this Python (pip install roapi).
"""
import argparse
import json
import os
import platform
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from urllib.parse import quote
from pathlib import Path

HERE = Path(__file__).resolve().parent
BIN = Path(sys.executable).parent

UNIQUE = str(HERE / "unique_query.lua")
QUERIES = {
    # PERF.md's users; dates inside the demo data (2019-2024)
    "tile": "start_date=2024-07-08&end_date=2024-07-14&hubs=HB_NORTH,HB_HOUSTON&price_type=day_ahead",
    "page": "start_date=2024-07-01&end_date=2024-07-31&hubs=HB_NORTH,HB_HOUSTON,HB_SOUTH,HB_WEST,HB_PAN&price_type=combined",
    "analyst": "start_date=2023-01-01&end_date=2023-12-31&price_type=day_ahead&hubs="
    + ",".join(
        "DC_E DC_L DC_N DC_R DC_S HB_BUSAVG HB_HOUSTON HB_HUBAVG HB_NORTH HB_PAN HB_SOUTH HB_WEST "
        "LZ_AEN LZ_CPS LZ_HOUSTON LZ_LCRA LZ_NORTH LZ_RAYBN LZ_SOUTH LZ_WEST".split()
    ),
}


def free_port():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def pinned(cpu, command):
    return ["taskset", "-c", str(cpu), *command] if shutil.which("taskset") and os.cpu_count() > 1 else command


class Server:
    def __init__(self, name, command, env=None, ready_path="/"):
        self.name = name
        self.port = free_port()
        command = [c.replace("{port}", str(self.port)) for c in command]
        self.proc = subprocess.Popen(
            pinned(0, command),
            env={**os.environ, **(env or {})},
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )
        deadline = time.monotonic() + 180
        while True:
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{self.port}{ready_path}", timeout=5).read()
                break
            except OSError:
                if self.proc.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"{name} did not start")
                time.sleep(0.3)

    def url(self, path):
        return f"http://127.0.0.1:{self.port}{path}"

    def stop(self):
        os.killpg(self.proc.pid, signal.SIGTERM)
        try:
            self.proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait()


def _seconds(text):
    value, unit = re.fullmatch(r"([\d.]+)(us|ms|s)", text).groups()
    return float(value) * {"us": 1e-6, "ms": 1e-3, "s": 1.0}[unit]


def wrk(url, connections, duration, script=None):
    """requests/s, p50 and p99 latency (s) of wrk with one thread."""
    out = subprocess.run(
        pinned(1, ["wrk", "-t1", f"-c{connections}", f"-d{duration}s", "--latency", *(["-s", script] if script else []), url]),
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    errors = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    if errors:
        raise RuntimeError(f"{url}: {errors.group(1)} error responses\n{out}")
    return {
        "requests_per_s": float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1)),
        "p50_s": _seconds(re.search(r"^\s+50%\s+(\S+)", out, re.M).group(1)),
        "p99_s": _seconds(re.search(r"^\s+99%\s+(\S+)", out, re.M).group(1)),
    }


def measure(server, path, args, script=None):
    url = server.url(path)
    wrk(url, args.connections, args.warmup, script)
    result = wrk(url, args.connections, args.duration, script)
    result["one_connection_p99_s"] = wrk(url, 1, args.duration, script)["p99_s"]
    result["body_bytes"] = len(urllib.request.urlopen(url).read())
    print(f"  {server.name:<28} {path[:50] + (' (unique)' if script else ''):<60} {result['requests_per_s']:>10.0f} req/s  p99 {result['p99_s'] * 1e3:.2f} ms"
          f"  p99@1conn {result['one_connection_p99_s'] * 1e3:.3f} ms", flush=True)
    return result


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


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data-dir", help="data directory (default: generate the demo data into a temp folder)")
    parser.add_argument("--duration", type=int, default=5, help="seconds per measurement (default 5)")
    parser.add_argument("--warmup", type=int, default=2, help="seconds of warm-up (default 2)")
    parser.add_argument("--connections", type=int, default=32, help="wrk connections (default 32)")
    parser.add_argument("--worker-class", default="meinheld", choices=("meinheld", "sync"))
    parser.add_argument("--out", default=str(HERE / "results" / "http.json"))
    args = parser.parse_args()

    scratch = tempfile.mkdtemp(prefix="bench-http-")
    data_dir = args.data_dir
    if data_dir is None:
        from ercot_fast.demo import write_demo_data

        data_dir = os.path.join(scratch, "demo")
        write_demo_data(data_dir)
    worker = {"meinheld": "meinheld.gmeinheld.MeinheldWorker", "sync": "sync"}[args.worker_class]
    gunicorn = [str(BIN / "gunicorn"), "--chdir", str(HERE), "-w", "1", "-k", worker, "--no-control-socket", "-b", "127.0.0.1:{port}"]
    ours = [str(BIN / "ercot-fast"), "serve", "--data-dir", data_dir, "--workers", "1", "--worker-class", args.worker_class,
            "--json-addr", "127.0.0.1:{port}", "--log-level", "warning"]
    results = {}

    print("servers, one at a time; wrk -t1, one worker each", flush=True)
    server = Server("hello-world Falcon", [*gunicorn, "baseline_apps:hello"])
    try:
        results["hello_world"] = measure(server, "/", args)
    finally:
        server.stop()
    for label, cache_mb in (("ours, response cache off", "0"), ("ours, response cache on", "64")):
        server = Server(label, [*ours, "--response-cache-mb", cache_mb], env={"FLIGHT_ADDR": f"127.0.0.1:{free_port()}"}, ready_path="/api/health")
        try:
            results[label] = {name: measure(server, "/api/prices?" + q, args) for name, q in QUERIES.items()}
            if cache_mb == "0":  # the path of a query string seen for the first time
                results[label]["tile_unique"] = measure(server, "/api/prices?" + QUERIES["tile"], args, UNIQUE)
        finally:
            server.stop()
    server = Server("straightforward numpy+orjson", [*gunicorn, "baseline_apps:straightforward"], env={"BENCH_DATA_DIR": data_dir},
                    ready_path="/api/prices?" + QUERIES["tile"])
    try:
        results["straightforward"] = {name: measure(server, "/api/prices?" + QUERIES[name], args) for name in ("tile", "analyst")}
    finally:
        server.stop()
    if (BIN / "roapi").exists():
        tables = [arg for year in (2023, 2024) for arg in ("-t", f"day_ahead_{year}={data_dir}/flattened/DA_prices_{year}.parquet")]
        server = Server("ROAPI", [str(BIN / "roapi"), "-a", "127.0.0.1:{port}", "-p", f"127.0.0.1:{free_port()}",
                                  "--addr-flight-sql", f"127.0.0.1:{free_port()}", *tables], ready_path="/api/schema")
        try:
            results["roapi"] = {name: measure(server, roapi_url(name), args) for name in ("tile", "analyst")}
        finally:
            server.stop()

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
    print("\nratios:")
    for name, value in ratios.items():
        print(f"  {name:<40} {value:6.2f}")
    report = {
        "machine": {"cpus": os.cpu_count(), "processor": platform.processor() or platform.machine(), "python": platform.python_version()},
        "settings": vars(args),
        "results": results,
        "ratios": ratios,
    }
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(report, indent=2) + "\n")
    shutil.rmtree(scratch, ignore_errors=True)


if __name__ == "__main__":
    main()
