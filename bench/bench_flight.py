"""Quant pull over Arrow Flight: ours beside a bare pyarrow.flight server, one run.

Question: how fast does every real-time 15-minute price of the demo data set
(2019-2024) reach a client, wide and long, for every ticket kind (the whole
data set, all 20 settlement points; a query ticket for 15 of them over the
six years), and how close is that to a bare ``pyarrow.flight`` server
streaming the same table already built in memory? And what do the opt-in
IPC compressions (``"compression": "zstd"`` or ``"lz4"``) cost and save?

- ours: ``ercot-fast serve`` as users run it (the Flight child of the gunicorn
  master), tickets ``{"dataset": "real_time_15min", "layout": ...}`` and
  ``{"start_date": ..., "hubs": [15 points], ...}`` through
  ``ercot_fast.client.PriceClient``;
- bare: a minimal ``FlightServerBase`` (this script, ``--serve-bare``) whose
  do_get returns ``RecordBatchStream`` of a table built with plain pyarrow at
  startup, chunked at the same batch bound (compressed the same way for the
  compressed pulls).

Each pull is timed to the last byte (``read_all``: GB/s of Arrow buffers,
rows/s, prices/s) and then to the DataFrame (``to_pandas``). The two servers
alternate pull by pull; medians are reported and written to
``bench/results/flight.json``.

    python bench/bench_flight.py [--data-dir DIR] [--repeat 25]
"""
import argparse
import os
import signal
import statistics
import sys

import pyarrow as pa
import pyarrow.flight as flight

import _harness as harness
from ercot_fast import demo, timeutil
from ercot_fast.client import PriceClient
from ercot_fast.datasets import REAL_TIME_15MIN, settlement_point_order
from ercot_fast.render import arrow
from ercot_fast.store.load import load_store

RESULTS = harness.RESULTS / "flight.json"
LAYOUTS = ("wide", "long")
SUBSET = 15  # settlement points of the query tickets: the first 15 in the data's order
COMPRESSIONS = ("zstd", "lz4")
WARM_UP = 3


# --- the bare baseline -------------------------------------------------------


def bare_tables(data_dir):
    """The same data as plain pyarrow tables, materialised once and chunked at
    the same row bounds as ours: ``{ticket: (table, IPC options)}``, a ticket
    being ``LAYOUT[ SUBSET][ COMPRESSION]``."""
    dataset = load_store(data_dir).datasets[REAL_TIME_15MIN]
    names = sorted(dataset.columns, key=settlement_point_order)
    times = pa.array(dataset.timestamps, type=pa.timestamp("ms", tz="UTC"))
    tables = {}
    for suffix, chosen in (("", names), (f" {SUBSET}", names[:SUBSET])):
        wide = pa.table({"datetime": times, **{n: dataset.columns[n] for n in chosen}}).combine_chunks()
        long = pa.concat_tables(
            pa.table({"datetime": times, "hub": pa.repeat(n, len(times)), "price": dataset.columns[n]}) for n in chosen
        ).combine_chunks()
        wide_rows = arrow.rows_per_batch(8 * (1 + len(chosen)) + (len(chosen) + 7) // 8)
        tables[f"wide{suffix}"] = pa.Table.from_batches(wide.to_batches(max_chunksize=wide_rows))
        tables[f"long{suffix}"] = pa.Table.from_batches(long.to_batches(max_chunksize=arrow.MAX_BATCH_ROWS))
    served = {name.encode(): (table, None) for name, table in tables.items()}
    for compression in COMPRESSIONS:
        served[f"long {compression}".encode()] = (tables["long"], pa.ipc.IpcWriteOptions(compression=compression))
    return served


class BareServer(flight.FlightServerBase):
    def __init__(self, location, tables):
        super().__init__(location)
        self.tables = tables

    def do_get(self, context, ticket):
        table, options = self.tables[ticket.ticket]
        return flight.RecordBatchStream(table, options=options)


def serve_bare(port, data_dir):
    server = BareServer(f"grpc://{harness.HOST}:{port}", bare_tables(data_dir))
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    server.serve()


# --- the run -----------------------------------------------------------------


def wait_for(server, client):
    """Until ``client`` (a flight.FlightClient) reaches ``server``, a harness.Server."""
    server.wait_until(lambda: client.wait_for_available(timeout=1), errors=(flight.FlightUnavailableError,),
                      timeout=120, interval=0)


def pull(read):
    """(seconds to the last byte, seconds to the DataFrame, table)."""
    received, table = harness.timed(read)
    converted, _ = harness.timed(lambda: table.to_pandas(split_blocks=True))
    return received, received + converted, table


def summarise(samples, table, series):
    read = statistics.median(s[0] for s in samples)
    to_frame = statistics.median(s[1] for s in samples)
    nbytes = table.get_total_buffer_size()
    prices = table.num_rows * (series if table.num_columns > 3 else 1)
    return {
        "rows": table.num_rows,
        "arrow_bytes": nbytes,
        "batches": table.column(0).num_chunks,
        "seconds_to_last_byte_median": round(read, 5),
        "seconds_to_last_byte_min": round(min(s[0] for s in samples), 5),
        "seconds_to_last_byte_all": [round(s[0], 5) for s in samples],
        "gb_per_s": round(nbytes / read / 1e9, 3),
        "rows_per_s": round(table.num_rows / read),
        "prices_per_s": round(prices / read),
        "seconds_to_dataframe_median": round(to_frame, 5),
    }


def race(readers, series, repeat):
    """Ours against bare on one layout: WARM_UP pulls each, their tables
    compared, then ``repeat`` timed pulls each, alternating which goes first."""
    samples = {"ours": [], "bare": []}
    tables = {}
    for _ in range(WARM_UP):  # first pulls pay for the client's fresh memory
        for name, read in readers.items():
            tables[name] = pull(read)[2]
    for a, b in zip(tables["ours"].columns, tables["bare"].columns):
        assert a.equals(b), "ours and bare differ"
    for i in range(repeat):
        order = ("ours", "bare") if i % 2 == 0 else ("bare", "ours")
        for name in order:
            seconds, to_frame, tables[name] = pull(readers[name])
            samples[name].append((seconds, to_frame))
    entry = {name: summarise(samples[name], tables[name], series) for name in ("ours", "bare")}
    for stat in ("median", "min"):
        entry[f"ratio_ours_to_bare_throughput_{stat}"] = round(
            entry["bare"][f"seconds_to_last_byte_{stat}"] / entry["ours"][f"seconds_to_last_byte_{stat}"], 3
        )
    return entry


def ipc_bytes(table, compression=None):
    """Bytes of ``table`` as an Arrow IPC stream (what crosses the wire), compressed or not."""
    sink = pa.BufferOutputStream()
    options = pa.ipc.IpcWriteOptions(compression=compression) if compression else None
    with pa.ipc.new_stream(sink, table.schema, options=options) as writer:
        writer.write_table(table)
    return sink.getvalue().size


def run(data_dir, repeat):
    dataset = load_store(data_dir).datasets[REAL_TIME_15MIN]
    series = len(dataset.columns)
    subset = sorted(dataset.columns, key=settlement_point_order)[:SUBSET]
    first, last = (timeutil.central_date(int(ms)).isoformat() for ms in (dataset.timestamps[0], dataset.timestamps[-1]))
    ours_addr, bare_port = harness.free_addr(), harness.free_port()
    server_cpus, client_cpus = harness.split_cpus()
    ours_command = harness.serve_command(data_dir, harness.free_addr(), ours_addr, 1, "--worker-class", "sync")
    bare_command = [sys.executable, __file__, "--serve-bare", str(bare_port), str(data_dir)]
    with harness.Server("ercot-fast serve", ours_command, cpus=server_cpus, quiet=False) as ours, \
            harness.Server("bare pyarrow.flight", bare_command, cpus=server_cpus, quiet=False) as bare:
        if client_cpus:
            os.sched_setaffinity(0, client_cpus)
        prices = PriceClient(f"grpc://{ours_addr}")
        bare_client = flight.connect(f"grpc://{harness.HOST}:{bare_port}")
        wait_for(ours, prices._flight)
        wait_for(bare, bare_client)

        def bare_read(ticket):
            return lambda: bare_client.do_get(flight.Ticket(ticket.encode())).read_all()

        readers = {}
        for layout in LAYOUTS:
            readers[f"dataset {layout}"] = {
                "ours": lambda layout=layout: prices.dataset_table(REAL_TIME_15MIN, layout=layout),
                "bare": bare_read(layout),
            }
            readers[f"query {layout}, {SUBSET} points"] = {
                "ours": lambda layout=layout: prices.table(first, last, subset, "real_time", resolution="15min",
                                                           layout=layout),
                "bare": bare_read(f"{layout} {SUBSET}"),
            }
        for compression in COMPRESSIONS:
            readers[f"dataset long, {compression}"] = {
                "ours": lambda c=compression: prices.dataset_table(REAL_TIME_15MIN, layout="long", compression=c),
                "bare": bare_read(f"long {compression}"),
            }
        results = {kind: race(pair, series if kind.startswith("dataset") else SUBSET, repeat)
                   for kind, pair in readers.items()}
        table = prices.dataset_table(REAL_TIME_15MIN, layout="long")
    long = results["dataset long"]
    plain = ipc_bytes(table)
    results["compression"] = {
        compression: {
            "ipc_bytes": ipc_bytes(table, compression),
            "ipc_bytes_uncompressed": plain,
            "size_ratio": round(ipc_bytes(table, compression) / plain, 3),
            "pull_seconds_median": results[f"dataset long, {compression}"]["ours"]["seconds_to_last_byte_median"],
            "pull_seconds_median_uncompressed": long["ours"]["seconds_to_last_byte_median"],
        }
        for compression in COMPRESSIONS
    }
    return results


def report(args, results):
    return {
        "question": "quant pull: all real-time 15-minute prices of the demo data set, all settlement points",
        "command": harness.command_line("bench_flight.py", args, skip=("output", "serve_bare")),
        "machine": harness.machine("cpus", "python", "platform", pyarrow=pa.__version__),
        "batch_bound": {"max_rows": arrow.MAX_BATCH_ROWS, "max_bytes": arrow.MAX_BATCH_BYTES},
        "repeat": args.repeat,
        "results": results,
    }


def print_table(results):
    print(f"{'ticket':28} {'server':5} {'MB':>7} {'GB/s':>6} {'Mrows/s':>8} {'Mprices/s':>10} {'to DataFrame':>13}")
    for kind, entry in results.items():
        if kind == "compression":
            continue
        for name in ("ours", "bare"):
            r = entry[name]
            print(
                f"{kind:28} {name:5} {r['arrow_bytes'] / 1e6:7.1f} {r['gb_per_s']:6.2f} {r['rows_per_s'] / 1e6:8.2f} "
                f"{r['prices_per_s'] / 1e6:10.2f} {r['seconds_to_dataframe_median'] * 1e3:10.1f} ms"
            )
        print(
            f"{kind:28} ours/bare throughput: {entry['ratio_ours_to_bare_throughput_median']:.2f}x (medians), "
            f"{entry['ratio_ours_to_bare_throughput_min']:.2f}x (best pulls)"
        )
    for compression, entry in results["compression"].items():
        print(f"{compression}: {entry['ipc_bytes'] / 1e6:.1f} MB of {entry['ipc_bytes_uncompressed'] / 1e6:.1f} MB "
              f"({entry['size_ratio']:.2f}); pull {entry['pull_seconds_median'] * 1e3:.0f} ms, "
              f"uncompressed {entry['pull_seconds_median_uncompressed'] * 1e3:.0f} ms")


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    harness.add_data_dir_option(parser)
    parser.add_argument("--repeat", type=int, default=25, help="timed pulls per server and layout (default 25)")
    parser.add_argument("--output", default=str(RESULTS), help=f"results file (default {RESULTS})")
    parser.add_argument("--serve-bare", nargs=2, metavar=("PORT", "DATA_DIR"), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.serve_bare:
        return serve_bare(int(args.serve_bare[0]), args.serve_bare[1])
    with harness.scratch("bench-flight-") as scratch:
        results = run(harness.data_dir(args.data_dir, scratch, demo.write_demo_data), args.repeat)
    harness.write_results(args.output, report(args, results))
    print_table(results)
    print(f"wrote {args.output}")


if __name__ == "__main__":
    main()
