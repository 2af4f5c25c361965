"""Startup time and memory of `ercot-fast serve` with 1 and 2 HTTP workers.

The store is loaded once in the master before gunicorn forks, so a second
worker should add little: this measures the proportional set size (PSS, shared
pages split between the processes that share them) summed over the whole
process tree, beside the plain RSS sum, which counts shared pages once per
process.

    python bench/bench_memory.py [--data-dir DIR] [--out bench/results/memory.json]
"""
import argparse
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

HERE = Path(__file__).resolve().parent
TILE = "/api/prices?start_date=2024-07-08&end_date=2024-07-14&hubs=HB_NORTH,HB_HOUSTON&price_type=day_ahead"


def free_port():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


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
    port = free_port()
    started = time.perf_counter()
    proc = subprocess.Popen(
        [str(Path(sys.executable).parent / "ercot-fast"), "serve", "--data-dir", data_dir, "--workers", str(workers),
         "--json-addr", f"127.0.0.1:{port}", "--log-level", "warning"],
        env={**os.environ, "FLIGHT_ADDR": f"127.0.0.1:{free_port()}"},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        while True:
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{port}/api/health", timeout=5).read()
                break
            except OSError:
                if proc.poll() is not None:
                    raise RuntimeError("serve exited")
                time.sleep(0.05)
        startup = time.perf_counter() - started
        for _ in range(200):  # every worker answers real queries before we look
            urllib.request.urlopen(f"http://127.0.0.1:{port}{TILE}").read()
        time.sleep(1)
        pids = tree(proc.pid)
        return {
            "workers": workers,
            "processes": len(pids),
            "startup_s": round(startup, 3),
            "pss_total_mb": round(sum(rollup(p, "Pss") for p in pids) / 2**20, 1),
            "rss_sum_mb": round(sum(rollup(p, "Rss") for p in pids) / 2**20, 1),
        }
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=30)


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data-dir", help="data directory (default: the demo data, generated into a temp folder)")
    parser.add_argument("--out", default=str(HERE / "results" / "memory.json"))
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as scratch:
        data_dir = args.data_dir
        if data_dir is None:
            from ercot_fast.demo import write_demo_data

            data_dir = os.path.join(scratch, "demo")
            write_demo_data(data_dir)
        from ercot_fast.store.load import load_store

        store = load_store(data_dir)
        store_mb = sum(
            d.timestamps.nbytes + sum(c.nbytes for c in d.columns.values()) for d in store.datasets.values()
        ) / 2**20
        runs = [measure(data_dir, workers) for workers in (1, 2)]
    for run in runs:
        print(f"workers={run['workers']}  processes={run['processes']}  startup {run['startup_s']:.2f} s  "
              f"PSS total {run['pss_total_mb']} MB  RSS sum {run['rss_sum_mb']} MB")
    added = runs[1]["pss_total_mb"] - runs[0]["pss_total_mb"]
    print(f"store arrays: {store_mb:.1f} MB; the second worker adds {added:.1f} MB PSS")
    report = {"store_arrays_mb": round(store_mb, 1), "runs": runs, "second_worker_adds_pss_mb": round(added, 1)}
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(report, indent=2) + "\n")


if __name__ == "__main__":
    main()
