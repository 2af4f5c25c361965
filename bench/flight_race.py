"""Arrow Flight, ours beside a bare ``pyarrow.flight`` server (``bare_flight``)
streaming the same tables, for every ticket kind and layout: the quant pull
(a whole data set ticket, every real-time 15-minute price), and query tickets
for a subset of settlement points (six years of 15, one year of 5), wide and
long.

Ours answers each ticket once; the tables it sent are written for the bare
server, which holds them in memory as the same batches; the two are checked
equal. Then pulls alternate, ours and bare, each timed to the last byte
(``read_all``): GB/s of Arrow buffers, medians and ratios.
"""
import json
import statistics
import sys

import pyarrow.flight as flight

import _harness as harness
import bare_flight

SERVER_POINTS = sorted(harness.SETTLEMENT_POINTS)
TICKETS = {
    "dataset": {"dataset": "real_time_15min"},
    "query, 6 years x 15 points": {"start_date": "2019-01-01", "end_date": "2024-12-31", "price_type": "real_time",
                                   "resolution": "15min", "hubs": SERVER_POINTS[:15]},
    "query, 1 year x 5 points": {"start_date": "2023-01-01", "end_date": "2023-12-31", "price_type": "real_time",
                                 "resolution": "15min", "hubs": SERVER_POINTS[:5]},
}
LAYOUTS = ("wide", "long")


def tickets():
    """{(kind, layout): ticket bytes}."""
    return {(kind, layout): json.dumps({**ticket, "layout": layout}).encode()
            for kind, ticket in TICKETS.items() for layout in LAYOUTS}


def _connect(server, port):
    client = flight.connect(f"grpc://{harness.HOST}:{port}")
    server.wait_until(lambda: client.wait_for_available(timeout=1), errors=(flight.FlightUnavailableError,),
                      timeout=120, interval=0)
    return client


def run(data_dir, scratch, repeat):
    """{"kind, layout": {"ours": ..., "bare": ..., "ratio": ours GB/s / bare GB/s}} (``repeat``
    pulls each; ``repeat`` 1: one pull each, the tables only compared)."""
    port, bare_port = harness.free_port(), harness.free_port()
    command = harness.serve_command(data_dir, harness.free_addr(), f"{harness.HOST}:{port}", 1, "--worker-class", "sync")
    wanted = tickets()
    with harness.Server("ercot-fast serve", command, cpus=harness.SERVER_CPUS) as ours_server:
        ours = _connect(ours_server, port)
        answered = {ticket: ours.do_get(flight.Ticket(ticket)).read_all() for ticket in wanted.values()}
        bare_flight.write_tables(scratch / "bare-flight", answered)
        bare_command = [sys.executable, harness.HERE / "bare_flight.py", bare_port, scratch / "bare-flight"]
        with harness.Server("bare pyarrow.flight", bare_command, cpus=harness.SERVER_CPUS) as bare_server:
            bare = _connect(bare_server, bare_port)
            results = {}
            for (kind, layout), ticket in wanted.items():
                results[f"{kind}, {layout}"] = _race({"ours": ours, "bare": bare}, ticket, answered[ticket], repeat)
                entry = results[f"{kind}, {layout}"]
                print(f"  {kind + ', ' + layout:<36} {entry['ours']['arrow_bytes'] / 1e6:8.1f} MB  "
                      f"ours {entry['ours']['gb_per_s']:5.2f} GB/s  bare {entry['bare']['gb_per_s']:5.2f} GB/s  "
                      f"ours/bare {entry['ratio']:.2f}x", flush=True)
    return results


def _race(clients, ticket, expected, repeat):
    samples = {name: [] for name in clients}
    for i in range(max(repeat, 1) + (1 if repeat > 1 else 0)):  # the first round warms up, unless only one
        order = list(clients) if i % 2 == 0 else list(clients)[::-1]
        for name in order:
            seconds, table = harness.timed(lambda: clients[name].do_get(flight.Ticket(ticket)).read_all())
            if not table.equals(expected):
                raise SystemExit(f"error: the {name} Flight server sent another table for {ticket.decode()}")
            if repeat == 1 or i:
                samples[name].append(seconds)
    nbytes = expected.get_total_buffer_size()
    entry = {name: {"arrow_bytes": nbytes, "rows": expected.num_rows, "batches": expected.column(0).num_chunks,
                    "seconds_median": statistics.median(times), "seconds_all": times,
                    "gb_per_s": nbytes / statistics.median(times) / 1e9}
             for name, times in samples.items()}
    entry["ratio"] = entry["ours"]["gb_per_s"] / entry["bare"]["gb_per_s"]
    return entry
