"""Soak and faults under wrk: 64 keep-alive connections on a mixed query set
(bench/mixed_queries.lua: tiles, a page, a pull, errors) against
``ercot-fast serve``, while the memory of every process is sampled, and,
optionally, SIGHUP reloads or a SIGKILLed worker on the way.

One question per mode, answered side by side in one run:
- soak: zero failed requests, memory (PSS summed over the master, the
  workers and the Flight child) flat after warm-up;
- reloads: failed requests per reload under load (SIGHUP every few seconds);
- worker kill: failed requests when one HTTP worker is SIGKILLed (the master
  replaces it; only requests in flight on that worker may fail).

A failed request is a socket error (connect, read, write, timeout) or a 5xx;
the 400s of the mix's bad queries are answers.

    python bench/soak.py --data-dir /tmp/demo --seconds 60 --out bench/results/soak.json

Needs wrk (Debian: apt-get install wrk).
"""
import argparse
import json
import os
import re
import signal
import subprocess
import threading
import time
from pathlib import Path

import _harness as harness

MIX = Path(__file__).resolve().parent / "mixed_queries.lua"


def pss_kb(root):
    """PSS (kB) summed over ``root`` and every process below it."""
    pids = [root] + descendants(root)
    total = 0
    for pid in pids:
        try:
            text = Path(f"/proc/{pid}/smaps_rollup").read_text()
        except OSError:
            continue
        total += int(re.search(r"^Pss:\s+(\d+) kB", text, re.M).group(1))
    return total


def descendants(root):
    parents = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            parents[int(entry.name)] = int(stat.rsplit(")", 1)[1].split()[1])
    found, frontier = [], [root]
    while frontier:
        parent = frontier.pop()
        kids = [pid for pid, ppid in parents.items() if ppid == parent]
        found += kids
        frontier += kids
    return found


def run_wrk(url, connections, seconds, cpus):
    run = subprocess.run(
        ["wrk", "-t2", f"-c{connections}", f"-d{seconds}s", "--timeout", "10s", "-s", str(MIX), url],
        capture_output=True, text=True, preexec_fn=harness.on_cpus(cpus),
    )
    found = re.search(r"^WRK_JSON (.*)$", run.stdout, re.M)
    if run.returncode or not found:
        raise RuntimeError(f"wrk failed ({run.returncode}): {run.stdout}{run.stderr}")
    result = json.loads(found.group(1))
    result["5xx"] = sum(count for status, count in result["statuses"].items() if int(status) >= 500)
    sockets = result["errors"]
    result["failed"] = sockets["connect"] + sockets["read"] + sockets["write"] + sockets["timeout"] + result["5xx"]
    return result


def measure(data_dir, mode, seconds, workers, worker_class, every, warmup):
    """One server, one wrk run of ``seconds``, with the fault of ``mode``."""
    server_cpus, client_cpus = harness.split_cpus()
    json_addr, flight_addr = harness.free_addr(), harness.free_addr()
    command = harness.serve_command(data_dir, json_addr, flight_addr, workers, "--worker-class", worker_class)
    samples, events = [], []
    with harness.Server("ercot-fast", command, cpus=server_cpus) as server:
        server.wait_for_http(f"http://{json_addr}/api/health")
        master = server.proc.pid
        flight = [flight_pid(f"grpc://{flight_addr}")]
        done = threading.Event()

        def watch():
            started = time.monotonic()
            next_fault = every
            while not done.wait(1.0):
                elapsed = time.monotonic() - started
                samples.append((round(elapsed, 1), pss_kb(master)))
                if mode == "reloads" and elapsed >= next_fault:
                    os.kill(master, signal.SIGHUP)
                    events.append(("SIGHUP", round(elapsed, 1)))
                    next_fault += every
                if mode == "worker-kill" and not events and elapsed >= seconds / 2:
                    victim = [pid for pid in descendants(master) if pid not in flight and _ppid(pid) == master][0]
                    os.kill(victim, signal.SIGKILL)
                    events.append(("SIGKILL worker", round(elapsed, 1), victim))

        watcher = threading.Thread(target=watch, daemon=True)
        watcher.start()
        result = run_wrk(f"http://{json_addr}/", 64, seconds, client_cpus)
        done.set()
        watcher.join()
        result["server_alive_after"] = server.proc.poll() is None
        result["healthy_after"] = json.loads(harness.http_get(f"http://{json_addr}/api/health"))["status"]
    steady = [kb for at, kb in samples if at >= warmup]
    result["pss_mb"] = {
        "after_warmup_first": round(steady[0] / 1024, 1) if steady else None,
        "after_warmup_min": round(min(steady) / 1024, 1) if steady else None,
        "after_warmup_max": round(max(steady) / 1024, 1) if steady else None,
        "last": round(steady[-1] / 1024, 1) if steady else None,
        "spread_after_warmup": round((max(steady) - min(steady)) / min(steady), 4) if steady else None,
    }
    result["events"] = events
    result["pss_mb_samples"] = [(at, round(kb / 1024, 1)) for at, kb in samples]
    if mode == "reloads":
        reloads = sum(1 for e in events if e[0] == "SIGHUP")
        result["failed_per_reload"] = result["failed"] / reloads if reloads else None
    return result


def flight_pid(location):
    """The Flight child's pid, as its describe action tells."""
    import pyarrow.flight as flight

    with flight.connect(location) as client:
        client.wait_for_available(timeout=30)
        [result] = client.do_action(flight.Action("describe", b""))
        return json.loads(result.body.to_pybytes())["pid"]


def _ppid(pid):
    try:
        return int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[1])
    except OSError:
        return None


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    harness.add_data_dir_option(parser)
    parser.add_argument("--seconds", type=int, default=60, help="length of each wrk run (default 60)")
    parser.add_argument("--warmup", type=int, default=10, help="seconds before memory counts as steady (default 10)")
    parser.add_argument("--reload-every", type=int, default=5, help="seconds between SIGHUPs in the reloads run")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--worker-class", default="meinheld")
    parser.add_argument("--modes", default="soak,reloads,worker-kill", help="which runs (default all three)")
    parser.add_argument("--out", default=str(harness.RESULTS / "soak.json"))
    args = parser.parse_args(argv)
    from ercot_fast.demo import write_demo_data

    report = {
        "command": harness.command_line("soak.py", args, skip=("out",)),
        "machine": harness.machine("cpus", "python", "platform"),
        "connections": 64,
        "runs": {},
    }
    with harness.scratch("bench-soak-") as scratch:
        data_dir = harness.data_dir(args.data_dir, scratch, write_demo_data)
        for mode in args.modes.split(","):
            result = measure(data_dir, mode, args.seconds, args.workers, args.worker_class, args.reload_every, args.warmup)
            report["runs"][mode] = result
            print(f"{mode:12s} requests {result['requests']:>9,}  failed {result['failed']}  "
                  f"(5xx {result['5xx']}, sockets {result['errors']})  p99 {result['p99_ms']:.2f} ms  "
                  f"PSS {result['pss_mb']}  events {result['events']}")
    harness.write_results(args.out, report)


if __name__ == "__main__":
    main()
