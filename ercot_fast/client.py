"""A small client for the Arrow Flight API: prices as an Arrow table or a
pandas DataFrame, without writing tickets by hand.

    from ercot_fast.client import PriceClient

    with PriceClient("grpc://localhost:50051") as prices:
        df = prices.dataframe("2023-01-01", "2023-01-31", ["HB_NORTH", "HB_HOUSTON"])
        rt = prices.dataset_dataframe("real_time_15min", layout="wide")
        peaks = prices.sql_dataframe("SELECT market_day, max(price) AS peak FROM day_ahead "
                                     "WHERE settlement_point = ? GROUP BY 1 ORDER BY 2 DESC LIMIT 5", ["HB_NORTH"])

Over TLS (``ercot-fast serve --tls-cert ... --tls-key ...``), connect to
``grpc+tls://`` and, for a certificate that is not from a public authority,
give its CA: ``PriceClient("grpc+tls://prices.example:50051",
tls_root_certs="ca.pem")`` (a path, or the PEM bytes).

Tables come back in the long layout (``datetime``, ``hub``, ``price``) unless
``layout="wide"`` asks for one column per settlement point. ``datetime`` is a
UTC instant (``tz="America/Chicago"`` shows the same instants in Central time).
pandas is needed only for the ``*dataframe`` methods.

A service run as replicas with ``--flight-advertise`` hands out one endpoint
per replica for every pull, each a part of the answer: the client reads the
parts side by side, each from its replica, and puts them back together (the
same table as from one server).
"""
import json
import os
from concurrent.futures import ThreadPoolExecutor

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.flight as flight

from ercot_fast.flight import sql_messages

DEFAULT_LOCATION = "grpc://localhost:50051"


class PriceClient:
    """A connection to an ercot-fast Flight server. ``api_key``: the key to
    send with every call when the service asks for one (else None);
    ``tls_root_certs``: the CA certificate(s) to trust for a ``grpc+tls://``
    location, as a PEM file's path or its bytes (default: the system's).
    Other keywords go to ``pyarrow.flight.connect``."""

    def __init__(self, location=DEFAULT_LOCATION, api_key=None, *, tls_root_certs=None, **connect_options):
        self.location = location
        if isinstance(tls_root_certs, (str, os.PathLike)):
            with open(tls_root_certs, "rb") as file:
                tls_root_certs = file.read()
        self._connect = lambda where: flight.connect(where, tls_root_certs=tls_root_certs, **connect_options)
        self._flight = self._connect(location)
        self._replicas = {}  # location URI -> FlightClient, for pulls spread over replicas
        self._spread = None  # whether the server spreads pulls (describe's flight_locations), once asked
        headers = [(b"authorization", f"Bearer {api_key}".encode())] if api_key else []
        self._options = flight.FlightCallOptions(headers=headers)

    # --- Arrow tables --------------------------------------------------------

    def table(self, start_date, end_date, hubs=None, price_type="day_ahead", *, resolution=None, tz=None,
              layout="long", aggregate=None, stat=None, block=None, compression=None):
        """Prices of ``hubs`` (settlement points, or ancillary products) from
        ``start_date`` to ``end_date``, both inclusive, as a ``pyarrow.Table``.
        Dates and times as in the HTTP API: ``2023-01-01`` (a Central market
        day), RFC 3339 (``2023-01-01T06:00:00Z``), an aware datetime, epoch
        milliseconds or ``now-24h``. ``block`` (``5x16``, ``onpeak``, ...)
        keeps a trading block's intervals; ``aggregate`` (``daily``,
        ``monthly``, ...) gives one ``stat`` (``mean`` by default) per period.
        ``compression`` (``zstd`` or ``lz4``) has the server compress the
        record batches (smaller on a slow network; pyarrow reads them as is)."""
        ticket = {"start_date": _text(start_date), "end_date": _text(end_date), "price_type": price_type}
        options = {"resolution": resolution, "tz": tz, "aggregate": aggregate, "stat": stat, "block": block,
                   "compression": compression}
        return self.read(_with(ticket, hubs, layout, options))

    def dataset_table(self, name, hubs=None, *, layout="long", aggregate=None, stat=None, block=None, compression=None):
        """All of a data set (``day_ahead``, ``real_time``, ``real_time_15min``,
        ``ancillary_services``), every instant, optionally only ``hubs``, a
        block or an aggregate of it; ``compression`` as for ``table``."""
        options = {"aggregate": aggregate, "stat": stat, "block": block, "compression": compression}
        return self.read(_with({"dataset": name}, hubs, layout, options))

    def read(self, ticket):
        """The table of a raw ticket (a dict, JSON text or bytes)."""
        if isinstance(ticket, dict):
            ticket = json.dumps(ticket)
        if isinstance(ticket, str):
            ticket = ticket.encode()
        if self._spread is None:
            self._spread = bool(self.describe().get("flight_locations"))
        if not self._spread:
            return self._flight.do_get(flight.Ticket(ticket), options=self._options).read_all()
        info = self._flight.get_flight_info(flight.FlightDescriptor.for_command(ticket), options=self._options)
        with ThreadPoolExecutor(len(info.endpoints)) as pool:
            parts = list(pool.map(self._read_endpoint, info.endpoints))
        return _joined(parts)

    def _read_endpoint(self, endpoint):
        """One endpoint's part, from its first location (or from here)."""
        client = self._flight
        if endpoint.locations:
            uri = endpoint.locations[0].uri.decode()
            client = self._replicas.get(uri)
            if client is None:
                client = self._replicas[uri] = self._connect(uri)
        return client.do_get(endpoint.ticket, options=self._options).read_all()

    # --- pandas --------------------------------------------------------------

    def dataframe(self, *args, **kwargs):
        """``table(...)`` as a pandas DataFrame."""
        return _to_pandas(self.table(*args, **kwargs))

    def dataset_dataframe(self, *args, **kwargs):
        """``dataset_table(...)`` as a pandas DataFrame."""
        return _to_pandas(self.dataset_table(*args, **kwargs))

    # --- SQL (Arrow Flight SQL) -------------------------------------------------

    def sql(self, query, parameters=None):
        """The answer of one SQL SELECT over the live store, as a
        ``pyarrow.Table`` (tables ``day_ahead``, ``real_time``,
        ``real_time_15min``, ``ancillary_services`` and their ``*_wide``
        forms). ``parameters``: values for the query's ``?`` placeholders,
        in order, sent apart from the SQL (a prepared statement)."""
        if parameters is None:
            command = sql_messages.pack(sql_messages.CommandStatementQuery(query=query))
            return self._sql_result(command)
        request = sql_messages.pack(sql_messages.ActionCreatePreparedStatementRequest(query=query))
        [created] = self._flight.do_action(flight.Action("CreatePreparedStatement", request), options=self._options)
        handle = sql_messages.unpack(created.body.to_pybytes()).prepared_statement_handle
        command = sql_messages.pack(sql_messages.CommandPreparedStatementQuery(prepared_statement_handle=handle))
        try:
            values = pa.record_batch([pa.array([value]) for value in parameters], names=[str(i + 1) for i in range(len(parameters))])
            writer, reader = self._flight.do_put(flight.FlightDescriptor.for_command(command), values.schema, options=self._options)
            writer.write_batch(values)
            writer.done_writing()
            reader.read()
            writer.close()
            return self._sql_result(command)
        finally:
            closing = sql_messages.pack(sql_messages.ActionClosePreparedStatementRequest(prepared_statement_handle=handle))
            list(self._flight.do_action(flight.Action("ClosePreparedStatement", closing), options=self._options))

    def sql_dataframe(self, query, parameters=None):
        """``sql(...)`` as a pandas DataFrame."""
        return _to_pandas(self.sql(query, parameters))

    def _sql_result(self, command):
        info = self._flight.get_flight_info(flight.FlightDescriptor.for_command(command), options=self._options)
        return pa.concat_tables([self._flight.do_get(endpoint.ticket, options=self._options).read_all() for endpoint in info.endpoints])

    # --- the service ---------------------------------------------------------

    def available_hubs(self):
        """Settlement points in the data."""
        return self._action("available_hubs")

    def health(self):
        """The service's health, as ``GET /api/health`` reports it."""
        return self._action("healthcheck")

    def describe(self):
        """What the server has loaded, and its limits."""
        return self._action("describe")

    def _action(self, name):
        results = list(self._flight.do_action(flight.Action(name, b""), options=self._options))
        return json.loads(results[0].body.to_pybytes())

    def close(self):
        for client in (self._flight, *self._replicas.values()):
            client.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc_info):
        self.close()


def _joined(parts):
    """The parts of one answer (each a run of its instants) as one table: the
    long layout goes back to the server's order, each hub's rows together."""
    table = pa.concat_tables(parts)
    if len(parts) > 1 and "hub" in table.schema.names:
        hubs = pc.unique(table.column("hub"))  # in their order of first appearance: the server's
        position = pc.index_in(table.column("hub"), value_set=hubs)
        table = table.take(pc.sort_indices(position))  # NOTE: a stable sort: each hub's instants stay in order
    return table


def _with(ticket, hubs, layout, options):
    """``ticket`` with its hubs, layout and the options that are set."""
    if hubs is not None:
        ticket["hubs"] = [hubs] if isinstance(hubs, str) else list(hubs)
    ticket["layout"] = layout
    ticket.update((key, value) for key, value in options.items() if value is not None)
    return ticket


def _text(value):
    """Dates and datetimes as the API spells them; strings as given."""
    if hasattr(value, "isoformat"):
        if getattr(value, "tzinfo", None) is None and hasattr(value, "hour"):
            raise ValueError(f"{value!r} has no time zone: give an aware datetime or a date")
        return value.isoformat()
    return value


def _to_pandas(table):
    try:
        import pandas  # noqa: F401
    except ImportError as exc:
        raise ImportError("DataFrames need pandas: `pip install pandas`, or use the *table methods") from exc
    # PERF: one block per column, no consolidation copy
    return table.to_pandas(split_blocks=True)


def get_prices(start_date, end_date, hubs=None, price_type="day_ahead", *, location=DEFAULT_LOCATION, api_key=None,
               tls_root_certs=None, **options):
    """One-off pull as a DataFrame: ``get_prices("2023-01-01", "2023-01-31", ["HB_NORTH"])``."""
    with PriceClient(location, api_key, tls_root_certs=tls_root_certs) as prices:
        return prices.dataframe(start_date, end_date, hubs, price_type, **options)
