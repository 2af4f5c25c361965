"""Response compression on the analyst pull (1 year, 20 settlement points,
day-ahead, PERF.md), side by side in one run: body size and requests/s of
``ercot-fast serve`` (one meinheld worker, response cache on and off) for the
plain body and for each content coding, and the one-off cost of compressing
the body (what the first request of a cached answer pays).

    python bench/bench_compression.py [--data-dir DIR] [--duration 5] [--out bench/results/compression.json]

Needs wrk. On loopback, bytes are nearly free: the requests/s here are the
server's cost; the sizes are what a client on a real network saves.
"""
import argparse
import urllib.request

import _harness as harness
from loadgen import add_wrk_options, wrk
from ercot_fast.api import encoding
from ercot_fast.demo import write_demo_data
from ercot_fast.query.parse import parse_query
from ercot_fast.render.json import render_json
from ercot_fast.store.load import load_store

CODINGS = (None, *encoding.CODERS)
FORMATS = ("json", "csv")


def body_of(url, coding):
    request = urllib.request.Request(url, headers={"Accept-Encoding": coding} if coding else {})
    with urllib.request.urlopen(request, timeout=60) as response:
        assert response.headers.get("content-encoding") == coding, response.headers
        return response.read()


def compress_seconds(data_dir, repeat):
    """Best seconds to render the analyst pull's JSON, and to compress it with each coding."""
    store = load_store(data_dir)
    params = dict(p.split("=", 1) for p in harness.QUERIES["analyst"].split("&"))
    body = render_json(store, parse_query(params, store))
    calls = {"render JSON": lambda: render_json(store, parse_query(params, store))}
    calls.update({f"compress {name}": (lambda coder=coder: coder(body)) for name, coder in encoding.CODERS.items()})
    best, _ = harness.best_of(calls, repeat)
    return best


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_wrk_options(parser)
    parser.add_argument("--repeat", type=int, default=10, help="rounds of the one-off timings (default 10)")
    parser.add_argument("--out", default=str(harness.RESULTS / "compression.json"))
    args = parser.parse_args()
    results = {}
    with harness.scratch("bench-compression-") as scratch:
        data_dir = harness.data_dir(args.data_dir, scratch, write_demo_data)
        results["one_off_seconds"] = compress_seconds(data_dir, args.repeat)
        for cache_mb in ("64", "0"):
            addr = harness.free_addr()
            command = harness.serve_command(data_dir, addr, harness.free_addr(), 1, "--response-cache-mb", cache_mb)
            with harness.Server(f"ours, cache {cache_mb} MB", command, cpus=harness.SERVER_CPUS) as server:
                server.wait_for_http(f"http://{addr}/api/health")
                for fmt in FORMATS:
                    url = f"http://{addr}/api/prices?{harness.QUERIES['analyst']}&format={fmt}"
                    for coding in CODINGS:
                        headers = [f"Accept-Encoding: {coding}"] if coding else []
                        size = len(body_of(url, coding))
                        wrk(url, args.connections, args.warmup, headers=headers)
                        measured = wrk(url, args.connections, args.duration, headers=headers)
                        key = f"cache {'on' if cache_mb != '0' else 'off'}, {fmt}, {coding or 'plain'}"
                        results[key] = {**measured, "body_bytes": size}
                        print(f"  {key:<28} {size:>10,} B  {measured['requests_per_s']:>8.0f} req/s  "
                              f"p99 {measured['p99_s'] * 1e3:7.2f} ms", flush=True)
    for name, seconds in results["one_off_seconds"].items():
        print(f"  {name:<28} {seconds * 1e3:8.2f} ms")
    ratios = {}
    for cache in ("on", "off"):
        for fmt in FORMATS:
            plain = results[f"cache {cache}, {fmt}, plain"]
            for coding in encoding.CODERS:
                coded = results[f"cache {cache}, {fmt}, {coding}"]
                ratios[f"cache {cache}, {fmt}, {coding}: size"] = coded["body_bytes"] / plain["body_bytes"]
                ratios[f"cache {cache}, {fmt}, {coding}: requests/s"] = coded["requests_per_s"] / max(plain["requests_per_s"], 1e-9)
    report = {
        "machine": harness.machine("cpus", "processor", "python"),
        "command": harness.command_line("bench_compression.py", args, skip=("out",)),
        "results": results,
        "ratios": ratios,
    }
    harness.write_results(args.out, report)


if __name__ == "__main__":
    main()
