"""Instructions per request and per document, counted by callgrind: figures
that other load on this shared machine does not move (issue #13 items 3, 5).

- HTTP: the WSGI app called in-process with a request's environ, as the
  server calls it (no sockets: what the server adds is the same for all),
  one count per case: hello-world Falcon (the ceiling's app), and ours with
  the default layers (metrics, text access log) or none (``bare``), on the
  dashboard tile repeated, with a new ``nonce=`` per request, and with its
  week moved by one hour per request (``shifted``), response cache on or off.
- JSON: one document of a year of hourly prices for 20 settlement points,
  every price an arbitrary double (``bench_jsonwrite.make_table``, non-cents
  1.0): the JSON kernel against orjson, and each on the timestamps alone.

Each case runs in its own Python under ``valgrind --tool=callgrind`` with
instrumentation switched on only around the measured calls.

    python bench/bench_instructions.py [--data-dir DIR] [--requests 2000] [--out bench/results/instructions.json]

Needs valgrind (Debian package ``valgrind``).
"""
import argparse
import datetime as dt
import io
import os
import re
import subprocess
import sys
import tempfile

import _harness as harness

TILE = harness.QUERIES["tile"]
HTTP_CASES = ["hello", "repeated", "nonce", "shifted", "repeated bare", "nonce bare", "repeated cache-off",
              "nonce cache-off", "shifted cache-off"]
JSON_CASES = ["kernel", "kernel_stamps", "orjson", "orjson_stamps"]


def _query_string(kind, i):
    if kind == "nonce":
        return f"{TILE}&nonce={i}"
    if kind == "shifted":
        start = dt.datetime(2019, 1, 7, 6, tzinfo=dt.timezone.utc) + dt.timedelta(hours=i)
        end = start + dt.timedelta(days=7, hours=-1)
        return (f"hubs=HB_NORTH,HB_HOUSTON&price_type=day_ahead&start_date={start:%Y-%m-%dT%H:%M:%SZ}"
                f"&end_date={end:%Y-%m-%dT%H:%M:%SZ}")
    return TILE


def _counting(calls):
    """Run ``calls()`` with callgrind's instrumentation on."""
    subprocess.run(["callgrind_control", "-i", "on", str(os.getpid())], capture_output=True, check=False)
    calls()
    subprocess.run(["callgrind_control", "-i", "off", str(os.getpid())], capture_output=True, check=False)


def http_child(case, data_dir, requests):
    import baseline_apps
    from ercot_fast.access import keys
    from ercot_fast.api import guard, observe
    from ercot_fast.api.app import ROUTES, create_app
    from ercot_fast.metrics.counters import Counters
    from ercot_fast.store.load import load_store

    kind, *options = case.split()
    if kind == "hello":
        app, path = baseline_apps.hello, "/"
    else:
        log = os.open(os.devnull, os.O_WRONLY)
        layers = [] if "bare" in options else [observe.layer(ROUTES, "text", Counters(), log),
                                                guard.layer(keys.ApiKeys({}), None, None, None)]
        app = create_app(load_store(data_dir), cache_mb=0 if "cache-off" in options else 64, layers=layers)
        path = "/api/prices"

    def environ(i):
        return {"REQUEST_METHOD": "GET", "PATH_INFO": path, "QUERY_STRING": _query_string(kind, i),
                "SERVER_NAME": harness.HOST, "SERVER_PORT": "8080", "SERVER_PROTOCOL": "HTTP/1.1",
                "wsgi.url_scheme": "http", "REMOTE_ADDR": harness.HOST, "HTTP_HOST": f"{harness.HOST}:8080",
                "wsgi.input": io.BytesIO(), "wsgi.errors": sys.stderr}

    def start_response(status, headers, exc_info=None):
        assert status.startswith("200"), status

    for i in range(requests, requests + 200):  # warm: memos, caches, the first allocations
        app(environ(i), start_response)
    measured = [environ(i) for i in range(requests)]
    _counting(lambda: [app(e, start_response) for e in measured])


def json_child(case):
    import orjson
    from bench_jsonwrite import ORJSON_OPTIONS, make_table
    from ercot_fast.kernels import _jsonwrite as kernel

    timestamps, names, columns, arrays = make_table(8760, 20, 20210217, 1.0)
    stamps64 = timestamps.astype("datetime64[ms]")
    data = [{"hub": n, "prices": a} for n, a in zip(names, arrays)]
    call = {
        "kernel": lambda: kernel.write_prices(timestamps, None, names, columns),
        "kernel_stamps": lambda: kernel.write_prices(timestamps, None, [], []),
        "orjson": lambda: orjson.dumps({"timestamps": stamps64, "data": data}, option=ORJSON_OPTIONS),
        "orjson_stamps": lambda: orjson.dumps({"timestamps": stamps64, "data": []}, option=ORJSON_OPTIONS),
    }[case]
    call()
    _counting(lambda: [call() for _ in range(3)])


def count(args, child_args, per):
    """Instructions per ``per`` calls of a child run under callgrind."""
    with tempfile.TemporaryDirectory(prefix="bench-instructions-") as scratch:
        out = os.path.join(scratch, "callgrind.out")
        subprocess.run(["valgrind", "--tool=callgrind", "--instr-atstart=no", f"--callgrind-out-file={out}",
                        sys.executable, __file__, *child_args], check=True, capture_output=True)
        summary = subprocess.run(["callgrind_annotate", out], capture_output=True, text=True, check=True).stdout
    total = int(re.search(r"^\s*([\d,]+)\s.*PROGRAM TOTALS", summary, re.M).group(1).replace(",", ""))
    return round(total / per)


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    harness.add_data_dir_option(parser)
    parser.add_argument("--requests", type=int, default=2000, help="requests counted per HTTP case (default 2000)")
    parser.add_argument("--out", default=str(harness.RESULTS / "instructions.json"))
    parser.add_argument("--child", nargs="+", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        what, case, *rest = args.child
        return http_child(case, rest[0], int(rest[1])) if what == "http" else json_child(case)
    from ercot_fast.demo import write_demo_data

    with harness.scratch("bench-instructions-") as scratch:
        data_dir = harness.data_dir(args.data_dir, scratch, write_demo_data)
        http = {}
        for case in HTTP_CASES:
            http[case] = count(args, ["--child", "http", case, data_dir, str(args.requests)], args.requests)
            print(f"  HTTP {case:<20} {http[case]:>9,} instructions/request", flush=True)
    documents = {}
    for case in JSON_CASES:
        documents[case] = count(args, ["--child", "json", case], 3)
        print(f"  JSON {case:<20} {documents[case]:>11,} instructions/document", flush=True)
    prices = {who: documents[who] - documents[f"{who}_stamps"] for who in ("kernel", "orjson")}
    ratios = {
        "hello_over_ours_nonce": http["hello"] / http["nonce"],
        "json_document_kernel_over_orjson": documents["kernel"] / documents["orjson"],
        "json_prices_kernel_over_orjson": prices["kernel"] / prices["orjson"],
        "observe_layers_share_of_nonce": 1 - http["nonce bare"] / http["nonce"],
    }
    for name, value in ratios.items():
        print(f"  {name:<36} {value:6.3f}")
    harness.write_results(args.out, {"machine": harness.machine("cpus", "processor", "python"),
                                     "command": harness.command_line("bench_instructions.py", args, skip=("out", "child")),
                                     "http_instructions_per_request": http,
                                     "json_instructions_per_document": documents, "ratios": ratios})


if __name__ == "__main__":
    main()
