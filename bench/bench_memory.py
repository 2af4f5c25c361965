"""Startup time and memory of `ercot-fast serve` with 1 and 2 HTTP workers.

The store is loaded once in the master before gunicorn forks, so a second
worker should add little: this measures the proportional set size (PSS, shared
pages split between the processes that share them) summed over the whole
process tree, beside the plain RSS sum, which counts shared pages once per
process.

    python bench/bench_memory.py [--data-dir DIR] [--out bench/results/memory.json]
"""
import argparse
import time
from pathlib import Path

import _harness as harness
from ercot_fast.demo import write_demo_data

TILE = "/api/prices?" + harness.TILE_QUERY
REQUESTS = 200  # every worker answers real queries before we look


def tree(pid):
    """pid and all its descendants."""
    pids = [pid]
    for child in Path(f"/proc/{pid}/task/{pid}/children").read_text().split():
        pids += tree(int(child))
    return pids


def rollup(pid, field):
    for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) * 1024
    raise KeyError(field)


def measure(data_dir, workers):
    addr = harness.free_addr()
    command = harness.serve_command(data_dir, addr, harness.free_addr(), workers)
    with harness.Server("ercot-fast serve", command) as server:
        startup = server.wait_for_http(f"http://{addr}/api/health", interval=0.05)
        for _ in range(REQUESTS):
            harness.http_get(f"http://{addr}{TILE}")
        time.sleep(1)
        pids = tree(server.proc.pid)
        return {
            "workers": workers,
            "processes": len(pids),
            "startup_s": round(startup, 3),
            "pss_total_mb": round(sum(rollup(p, "Pss") for p in pids) / 2**20, 1),
            "rss_sum_mb": round(sum(rollup(p, "Rss") for p in pids) / 2**20, 1),
        }


def store_arrays_mb(data_dir):
    """MB of the store's timestamp and price arrays."""
    from ercot_fast.store.load import load_store

    store = load_store(data_dir)
    return sum(
        d.timestamps.nbytes + sum(c.nbytes for c in d.columns.values()) for d in store.datasets.values()
    ) / 2**20


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    harness.add_data_dir_option(parser)
    parser.add_argument("--out", default=str(harness.RESULTS / "memory.json"))
    args = parser.parse_args()
    with harness.scratch("bench-memory-") as scratch:
        data_dir = harness.data_dir(args.data_dir, scratch, write_demo_data)
        store_mb = store_arrays_mb(data_dir)
        runs = [measure(data_dir, workers) for workers in (1, 2)]
    for run in runs:
        print(f"workers={run['workers']}  processes={run['processes']}  startup {run['startup_s']:.2f} s  "
              f"PSS total {run['pss_total_mb']} MB  RSS sum {run['rss_sum_mb']} MB")
    added = runs[1]["pss_total_mb"] - runs[0]["pss_total_mb"]
    print(f"store arrays: {store_mb:.1f} MB; the second worker adds {added:.1f} MB PSS")
    report = {"store_arrays_mb": round(store_mb, 1), "runs": runs, "second_worker_adds_pss_mb": round(added, 1)}
    harness.write_results(args.out, report)


if __name__ == "__main__":
    main()
