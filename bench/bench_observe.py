"""What observing costs on the dashboard tile (PERF.md), side by side in one
run: ``ercot-fast serve`` (one meinheld worker pinned to CPU 0, wrk on CPU 1)
with neither metrics nor access log, with metrics only, and with both (the
default; text, then JSON), the log written to a file as a log collector would
read it. Rounds alternate the servers; the best requests/s of each is kept,
and the median of the CPU time the service's processes spent per request
(every process of its session: a figure that other load on the machine
disturbs far less than requests/s).

    python bench/bench_observe.py [--data-dir DIR] [--duration 5] [--rounds 2] [--out bench/results/observe.json]
"""
import argparse
import os
import shlex
import statistics

import _harness as harness
from loadgen import add_wrk_options, wrk
from ercot_fast.demo import write_demo_data

OFF = "neither"
VARIANTS = {OFF: ["--access-log", "off", "--metrics", "off"], "metrics": ["--access-log", "off"],
            "metrics + text access log": [], "metrics + JSON access log": ["--log-format", "json"]}


def measure(data_dir, options, log_file, args, cache_mb):
    addr = harness.free_addr()
    serve = harness.serve_command(data_dir, addr, harness.free_addr(), 1, "--response-cache-mb", cache_mb, *options)
    command = ["sh", "-c", f"exec {shlex.join(map(str, serve))} 2>>{shlex.quote(str(log_file))}"]
    with harness.Server("ours", command, cpus=harness.SERVER_CPUS) as server:
        url = f"http://{addr}/api/prices?{harness.QUERIES['tile']}"
        server.wait_for_http(url)
        wrk(url, args.connections, args.warmup)
        before = session_cpu_seconds(server.proc.pid)
        measured = wrk(url, args.connections, args.duration)
        spent = session_cpu_seconds(server.proc.pid) - before
        return {**measured, "cpu_us_per_request": spent / (measured["requests_per_s"] * args.duration) * 1e6}


def session_cpu_seconds(session):
    """User and system CPU seconds of every process of a session so far."""
    ticks = 0
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            with open(f"/proc/{pid}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[3]) == session:  # the session id (field 6 of stat)
            ticks += int(fields[11]) + int(fields[12])  # utime, stime
    return ticks / os.sysconf("SC_CLK_TCK")


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
            best, cpu = {}, {name: [] for name in VARIANTS}
            for _ in range(args.rounds):
                for name, options in VARIANTS.items():
                    measured = measure(data_dir, options, scratch / "serve.log", args, cache_mb)
                    cpu[name].append(measured.pop("cpu_us_per_request"))
                    if measured["requests_per_s"] > best.get(name, {}).get("requests_per_s", 0):
                        best[name] = measured
            off = best[OFF]["requests_per_s"]
            off_cpu = statistics.median(cpu[OFF])
            label = f"tile, response cache {'on' if cache_mb != '0' else 'off'}"
            results[label] = {name: {**m, "vs_off": m["requests_per_s"] / off, "cpu_us_per_request": statistics.median(cpu[name]),
                                     "cpu_vs_off": statistics.median(cpu[name]) / off_cpu} for name, m in best.items()}
            print(label)
            for name, m in results[label].items():
                print(f"  {name:<26} {m['requests_per_s']:>9.0f} req/s  {m['vs_off']:.3f}x neither  p99 {m['p99_s'] * 1e3:.2f} ms"
                      f"  CPU {m['cpu_us_per_request']:.1f} us/request ({m['cpu_vs_off']:.3f}x)")
    report = {
        "machine": harness.machine("cpus", "processor", "python"),
        "command": harness.command_line("bench_observe.py", args, skip=("out",)),
        "results": results,
    }
    harness.write_results(args.out, report)


if __name__ == "__main__":
    main()
