"""One command for the service's benchmark, from the repository root:

    python -m bench [--quick] [--out-dir bench/results] [--scale-cache DIR] [--only http,flight,scale]

Starts each server itself on 127.0.0.1 (pinned to CPU 0; the load generator
on CPU 1), warms it up, drives it, stops it, and writes
``<out-dir>/<date>-<host>.json``, a Markdown table (``.md``) and PNG charts
(``-http.png``, ``-latency.png``, ``-flight.png``, ``-scale.png``):

- http: every server side by side on the demo data (``servers``: ours with the
  compiled kernels, with the response cache off, with the pure-Python twins;
  the hello-world ceiling; straightforward numpy + orjson; ROAPI when
  installed), PERF.md's tile, page, analyst pull and quant pull, the same
  query string repeated and a fresh one per request, at 1 and 64 connections;
- flight: ours beside a bare ``pyarrow.flight`` server, every ticket kind and layout;
- scale: 20, 200 and 2,000 settlement points of six years of 15-minute prices
  (generated once into --scale-cache), startup and PSS against their baselines.

Load: wrk (Debian: ``apt-get install wrk``); without it a Python load
generator, which says so. ``--quick`` (CI) starts and stops every server, asks
each query once, checks that all servers answer the same numbers, drives each
for a second and runs the scale step on 20 points: it asserts no time.
"""
import argparse
import datetime as dt
import os
import platform
import socket
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))  # the neighbours, as bench's scripts import them

import _harness as harness  # noqa: E402
import flight_race  # noqa: E402
import http_race  # noqa: E402
import loadgen  # noqa: E402
import report  # noqa: E402
import scale  # noqa: E402
import servers  # noqa: E402
from ercot_fast.demo import write_demo_data  # noqa: E402

STEPS = ("http", "flight", "scale")
DURATION, WARMUP, FLIGHT_REPEAT = 2, 1, 10  # budget: the full run within 15 minutes on 2 cores


def parse_args(argv):
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true",
                        help="every server started and asked each query once, numbers compared (CI); no timing claims")
    parser.add_argument("--out-dir", default=str(harness.RESULTS), help="where the results go (default bench/results)")
    parser.add_argument("--scale-cache", default=str(Path(tempfile.gettempdir()) / "ercot-fast-bench-scale"),
                        help="where the scale curve's generated data sets are kept between runs "
                             "(default: ercot-fast-bench-scale in the system's temporary folder; 2,000 points: 1 GB)")
    parser.add_argument("--only", default=",".join(STEPS), help=f"steps to run, comma-separated (default {','.join(STEPS)})")
    parser.add_argument("--duration", type=int, default=DURATION, help=f"seconds per HTTP measurement (default {DURATION})")
    parser.add_argument("--worker-class", choices=tuple(servers.WORKER_CLASSES), default="meinheld",
                        help="the gunicorn worker class of every HTTP server (default meinheld)")
    parser.add_argument("--load-generator", choices=loadgen.GENERATORS,
                        help="wrk (the default when installed) or Python threads (the default without wrk)")
    args = parser.parse_args(argv)
    steps = args.only.split(",")
    unknown = set(steps) - set(STEPS)
    if unknown:
        parser.error(f"unknown step {', '.join(sorted(unknown))}: choose from {', '.join(STEPS)}")
    args.steps = [s for s in STEPS if s in steps]
    return args


def main(argv=None):
    args = parse_args(argv)
    generator = loadgen.choose(args.load_generator)
    if generator == "python":
        print("wrk is not installed (Debian: apt-get install wrk): load from Python threads, slower than the "
              "servers it drives, so its requests/s are the generator's limit as much as the server's", flush=True)
    started = time.perf_counter()
    servers.worker_class = args.worker_class
    chosen, missing = servers.available()
    for key, why in missing.items():
        print(f"{key}: {why}; left out", flush=True)
    run = {
        "date": dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "command": " ".join(["python -m bench", *(argv if argv is not None else sys.argv[1:])]),
        "worker_class": args.worker_class,
        "machine": machine(generator),
        "quick": args.quick,
        "left_out": missing,
    }
    with harness.scratch("bench-") as scratch:
        data_dir = scratch / "demo"
        write_demo_data(data_dir)
        if "http" in args.steps:
            print("HTTP: one server at a time, one worker on CPU 0, the load on CPU 1", flush=True)
            if args.quick:  # every query checked, the tile driven for a second at one connection
                run["http"] = http_race.run(data_dir, chosen, generator, 1, 0, measured=("tile",), connections=(1,),
                                            rounds=1)
            else:
                run["http"] = http_race.run(data_dir, chosen, generator, args.duration, WARMUP)
        if "flight" in args.steps:
            print("Flight: ours and the bare server, pulls alternating", flush=True)
            run["flight"] = flight_race.run(data_dir, scratch, 1 if args.quick else FLIGHT_REPEAT)
        if "scale" in args.steps:
            print("scale curve", flush=True)
            run["scale"] = scale.run(args.scale_cache, scratch, generator,
                                     points=scale.POINTS[:1] if args.quick else scale.POINTS, quick=args.quick)
    run["seconds"] = time.perf_counter() - started
    stem = "-".join([run["date"][:10], socket.gethostname()] + ([args.worker_class] if args.worker_class != "meinheld" else [])
                    + (["quick"] if args.quick else []))
    written = report.write(run, Path(args.out_dir), stem)
    print(f"done in {run['seconds']:.0f} s; wrote {', '.join(str(p) for p in written)}")


def machine(generator):
    import falcon
    import gunicorn
    import numpy
    import pyarrow

    return {
        "host": socket.gethostname(),
        "cpus": os.cpu_count(),
        "processor": _processor(),
        "memory_gib": round(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30, 1),
        "platform": platform.platform(),
        "python": platform.python_version(),
        "load_generator": generator,
        "versions": {"pyarrow": pyarrow.__version__, "numpy": numpy.__version__, "falcon": falcon.__version__,
                     "gunicorn": gunicorn.__version__},
        "load_average_at_start": os.getloadavg(),
    }


def _processor():
    for line in Path("/proc/cpuinfo").read_text().splitlines() if Path("/proc/cpuinfo").exists() else ():
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return platform.machine()


if __name__ == "__main__":
    main()
