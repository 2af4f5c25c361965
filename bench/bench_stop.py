"""How long ``ercot-fast serve`` takes to stop when idle: SIGINT (Ctrl-C) and
SIGTERM, sent to the whole process group (a terminal, ``docker stop`` of a
shell) or to the master alone (``kill``, process managers), for each worker
class. The issue's bound is 2 s, exit status 0, no traceback, no process left.

    python bench/bench_stop.py --data-dir /tmp/demo --out bench/results/stop.json
"""
import argparse
import os
import signal
import subprocess
import time

import _harness as harness


def stop_once(data_dir, worker_class, sig, group):
    json_addr = harness.free_addr()
    command = harness.serve_command(data_dir, json_addr, harness.free_addr(), 2, "--worker-class", worker_class)
    with harness.Server("ercot-fast", command, capture_stderr=True) as server:
        server.wait_for_http(f"http://{json_addr}/api/health")
        time.sleep(0.5)  # idle
        started = time.perf_counter()
        (os.killpg if group else os.kill)(server.proc.pid, sig)
        server.proc.wait(timeout=60)
        seconds = time.perf_counter() - started
        stderr = server.proc.stderr.read()
        left = subprocess.run(["pgrep", "-g", str(server.proc.pid)], capture_output=True, text=True).stdout.split()
    return {"seconds": round(seconds, 3), "exit": server.proc.returncode, "traceback": "Traceback" in stderr,
            "processes_left": len(left)}


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    harness.add_data_dir_option(parser)
    parser.add_argument("--out", default=str(harness.RESULTS / "stop.json"))
    args = parser.parse_args(argv)
    from ercot_fast.demo import write_demo_data

    runs = []
    with harness.scratch("bench-stop-") as scratch:
        data_dir = harness.data_dir(args.data_dir, scratch, write_demo_data)
        for worker_class in ("meinheld", "sync"):
            for sig in (signal.SIGINT, signal.SIGTERM):
                for group in (True, False):
                    result = stop_once(data_dir, worker_class, sig, group)
                    result.update(worker_class=worker_class, signal=sig.name, to="process group" if group else "master")
                    runs.append(result)
                    print(f"{worker_class:9s} {sig.name:8s} to {result['to']:14s} {result['seconds']:.2f} s  exit {result['exit']}  "
                          f"traceback {result['traceback']}  left {result['processes_left']}", flush=True)
    harness.write_results(args.out, {"command": harness.command_line("bench_stop.py", args, skip=("out",)),
                                     "machine": harness.machine("cpus", "python", "platform"), "runs": runs})


if __name__ == "__main__":
    main()
