"""What observing costs on the dashboard tile (PERF.md), side by side in one
run: ``ercot-fast serve`` (one meinheld worker pinned to CPU 0, wrk on CPU 1)
with neither metrics nor access log, with metrics only, and with both (the
default; text, then JSON), the log written to a file as a log collector would
read it. Rounds alternate the servers; the best requests/s of each is kept.

    python bench/bench_observe.py [--data-dir DIR] [--duration 5] [--rounds 2] [--out bench/results/observe.json]
"""
import argparse
import shlex

import _harness as harness
from bench_http import QUERIES, SERVER_CPUS, add_wrk_options, wrk
from ercot_fast.demo import write_demo_data

OFF = "neither"
VARIANTS = {OFF: ["--access-log", "off", "--metrics", "off"], "metrics": ["--access-log", "off"],
            "metrics + text access log": [], "metrics + JSON access log": ["--log-format", "json"]}


def measure(data_dir, options, log_file, args, cache_mb):
    addr = harness.free_addr()
    serve = harness.serve_command(data_dir, addr, harness.free_addr(), 1, "--response-cache-mb", cache_mb, *options)
    command = ["sh", "-c", f"exec {shlex.join(map(str, serve))} 2>>{shlex.quote(str(log_file))}"]
    with harness.Server("ours", command, cpus=SERVER_CPUS) as server:
        url = f"http://{addr}/api/prices?{QUERIES['tile']}"
        server.wait_for_http(url)
        wrk(url, args.connections, args.warmup)
        return wrk(url, args.connections, args.duration)


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_wrk_options(parser)
    parser.add_argument("--rounds", type=int, default=2, help="rounds of the servers (default 2)")
    parser.add_argument("--out", default=str(harness.RESULTS / "observe.json"))
    args = parser.parse_args()
    results = {}
    with harness.scratch("bench-observe-") as scratch:
        data_dir = harness.data_dir(args.data_dir, scratch, write_demo_data)
        for cache_mb in ("64", "0"):
            best = {}
            for _ in range(args.rounds):
                for name, options in VARIANTS.items():
                    measured = measure(data_dir, options, scratch / "serve.log", args, cache_mb)
                    if measured["requests_per_s"] > best.get(name, {}).get("requests_per_s", 0):
                        best[name] = measured
            off = best[OFF]["requests_per_s"]
            label = f"tile, response cache {'on' if cache_mb != '0' else 'off'}"
            results[label] = {name: {**m, "vs_off": m["requests_per_s"] / off} for name, m in best.items()}
            print(label)
            for name, m in results[label].items():
                print(f"  {name:<26} {m['requests_per_s']:>9.0f} req/s  {m['vs_off']:.3f}x neither  p99 {m['p99_s'] * 1e3:.2f} ms")
    report = {
        "machine": harness.machine("cpus", "processor", "python"),
        "command": harness.command_line("bench_observe.py", args, skip=("out",)),
        "results": results,
    }
    harness.write_results(args.out, report)


if __name__ == "__main__":
    main()
