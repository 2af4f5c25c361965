"""The bare baseline of Flight: a minimal ``pyarrow.flight`` server whose do_get
streams a table held in memory, built before it serves (PERF.md).

    python bench/bare_flight.py PORT FOLDER

FOLDER holds one Arrow IPC file per ticket (``<n>.arrow``) and ``tickets.json``
(the ticket bytes, as text, of each file, in order): the tables ours answered,
read back here and held as the same record batches, so both stream the same
bytes in the same batches.
"""
import json
import signal
import sys
from pathlib import Path

import pyarrow as pa
import pyarrow.flight as flight

HOST = "127.0.0.1"


class BareServer(flight.FlightServerBase):
    def __init__(self, location, tables):
        super().__init__(location)
        self.tables = tables

    def do_get(self, context, ticket):
        return flight.RecordBatchStream(self.tables[ticket.ticket])


def write_tables(folder, tables):
    """Write {ticket bytes: table} for ``serve`` to hold."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    for index, table in enumerate(tables.values()):
        with pa.OSFile(str(folder / f"{index}.arrow"), "wb") as sink, pa.ipc.new_file(sink, table.schema) as writer:
            writer.write_table(table)
    (folder / "tickets.json").write_text(json.dumps([ticket.decode() for ticket in tables]))


def serve(port, folder):
    folder = Path(folder)
    tickets = json.loads((folder / "tickets.json").read_text())
    tables = {}
    for index, ticket in enumerate(tickets):
        with pa.OSFile(str(folder / f"{index}.arrow")) as source:  # read into memory, not mapped
            tables[ticket.encode()] = pa.ipc.open_file(source).read_all()
    server = BareServer(f"grpc://{HOST}:{port}", tables)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    server.serve()


if __name__ == "__main__":
    serve(int(sys.argv[1]), sys.argv[2])
