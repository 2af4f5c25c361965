"""First-seen dashboard tiles against the hello-world ceiling (issue #13 item 3),
alternated in one run: the hello-world Falcon app and ``ercot-fast serve``
(response cache off, and on; metrics and access log on, the defaults), each one
gunicorn + meinheld worker pinned to CPU 0, all started once; wrk on CPU 1 drives
them in turn, round after round, and the best requests/s of each is kept, with
the median CPU time the server's processes spent per request (a figure that
other load on this shared machine disturbs far less than requests/s).

Two kinds of first-seen tile: ``nonce`` (the tile with an ignored counter
parameter, ``unique_query.lua``) and ``shifted`` (a week of the tile's hubs, moved by one
hour per request, ``shifted_range.lua``: what a dashboard polling "the last
week" sends).

    python bench/bench_first_seen.py [--data-dir DIR] [--duration 5] [--rounds 3] [--out bench/results/first_seen.json]
"""
import argparse
import contextlib
import statistics

import _harness as harness
import servers as bench_servers
from bench_observe import session_cpu_seconds
from loadgen import UNIQUE, add_wrk_options, wrk
from servers import price_path
from ercot_fast.demo import write_demo_data

SHIFTED = str(harness.HERE / "shifted_range.lua")
# the tile's week as instants; shifted_range.lua moves both by one hour per request
SHIFTED_PATH = "/api/prices?hubs=HB_NORTH,HB_HOUSTON&price_type=day_ahead"
SERVERS = {"hello_world": None, "cache_off": "0", "cache_on": "64"}


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_wrk_options(parser)
    parser.add_argument("--rounds", type=int, default=3, help="rounds of the servers (default 3)")
    parser.add_argument("--worker-class", default="meinheld", choices=tuple(bench_servers.WORKER_CLASSES))
    parser.add_argument("--out", default=str(harness.RESULTS / "first_seen.json"))
    args = parser.parse_args()
    bench_servers.worker_class = args.worker_class
    runs = {"hello_world": [("/", None)]}
    for name in ("cache_off", "cache_on"):
        runs[name] = [(price_path("tile"), None), (price_path("tile"), UNIQUE), (SHIFTED_PATH, SHIFTED)]
    best, cpu = {}, {}
    with harness.scratch("bench-first-seen-") as scratch, contextlib.ExitStack() as stack:
        data_dir = harness.data_dir(args.data_dir, scratch, write_demo_data)
        addrs, servers = {}, {}
        for name, cache_mb in SERVERS.items():
            addr = addrs[name] = harness.free_addr()
            command = (bench_servers.HELLO.command if cache_mb is None else bench_servers.ours_command(cache_mb))(addr, data_dir)
            server = servers[name] = stack.enter_context(harness.Server(name, command, cpus=harness.SERVER_CPUS))
            server.wait_for_http(f"http://{addr}/" if cache_mb is None else f"http://{addr}/api/health")
        for round_ in range(args.rounds):
            for name, paths in runs.items():
                for path, script in paths:
                    url = f"http://{addrs[name]}{path}"
                    key = f"{name} {_kind(script)}"
                    if round_ == 0:
                        wrk(url, args.connections, args.warmup, script)
                    before = session_cpu_seconds(servers[name].proc.pid)
                    result = wrk(url, args.connections, args.duration, script)
                    spent = session_cpu_seconds(servers[name].proc.pid) - before
                    cpu.setdefault(key, []).append(spent / (result["requests_per_s"] * args.duration) * 1e6)
                    print(f"  round {round_ + 1} {key:<24} {result['requests_per_s']:>9.0f} req/s  p99 {result['p99_s'] * 1e3:.2f} ms"
                          f"  {cpu[key][-1]:.1f} CPU us/request", flush=True)
                    if key not in best or result["requests_per_s"] > best[key]["requests_per_s"]:
                        best[key] = result
    for key in best:
        best[key]["cpu_us_per_request"] = statistics.median(cpu[key])
    hello = best["hello_world repeated"]
    ratios = {key.replace(" ", "_") + "_vs_hello": {
        "requests_per_s": value["requests_per_s"] / hello["requests_per_s"],
        "cpu_per_request": hello["cpu_us_per_request"] / value["cpu_us_per_request"],
    } for key, value in best.items() if not key.startswith("hello")}
    print("\nratios to hello-world (best requests/s of each; median CPU per request, hello's / ours):")
    for name, value in ratios.items():
        print(f"  {name:<36} {value['requests_per_s']:5.2f}  {value['cpu_per_request']:5.2f}")
    harness.write_results(args.out, {"machine": harness.machine("cpus", "processor", "python"), "settings": vars(args),
                                     "best": best, "ratios": ratios})


def _kind(script):
    return {None: "repeated", UNIQUE: "nonce", SHIFTED: "shifted"}[script]


if __name__ == "__main__":
    main()
