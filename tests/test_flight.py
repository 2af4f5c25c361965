"""Arrow Flight (API.md, "Arrow Flight"): a real pyarrow.flight.FlightClient
against the real server on 127.0.0.1, over the store built from the real ERCOT
CSVs, compared with the HTTP API answering the same queries."""
import datetime as dt
import json
import sys

import numpy as np
import pyarrow as pa
import pyarrow.flight as flight
import pytest

from ercot_fast import client as ercot_client
from ercot_fast.datasets import DAY_AHEAD, REAL_TIME_15MIN
from ercot_fast.flight import server as ercot_flight
from ercot_fast.flight import tickets
from ercot_fast.metrics.counters import Counters
from ercot_fast.query import run as query_run
from ercot_fast.render import arrow
from ercot_fast.store.load import load_store

MAX_RANGE_DAYS = 1000  # as the HTTP `client` fixture of conftest.py
EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.timezone.utc)
LONG_TYPES = [("datetime", pa.timestamp("ms", tz="UTC")), ("hub", pa.utf8()), ("price", pa.float64())]


@pytest.fixture(scope="module")
def server(utc_store):
    served = ercot_flight.PriceFlightServer(utc_store, "grpc://127.0.0.1:0", MAX_RANGE_DAYS)
    try:
        yield served
    finally:
        served.shutdown()


@pytest.fixture(scope="module")
def location(server):
    return f"grpc://127.0.0.1:{server.port}"


@pytest.fixture(scope="module")
def fl(location):
    connection = flight.connect(location)
    try:
        yield connection
    finally:
        connection.close()


def ticket(**params):
    return flight.Ticket(json.dumps(params).encode())


def pull(fl, **params):
    return fl.do_get(ticket(**params)).read_all()


def to_ms(text):
    return (dt.datetime.fromisoformat(text.replace("Z", "+00:00")) - EPOCH) // dt.timedelta(milliseconds=1)


def http_answer(client, params):
    """(instants in ms, [(series, prices)]) of GET /api/prices."""
    http_params = {k: ",".join(v) if isinstance(v, list) else v for k, v in params.items()}
    result = client.simulate_get("/api/prices", params=http_params)
    assert result.status_code == 200, result.text
    body = result.json
    return [to_ms(t) for t in body["timestamps"]], [(s["hub"], s["prices"]) for s in body["data"]]


def instants(column):
    return column.cast(pa.int64()).to_pylist()


def long_answer(table):
    """The long table split per hub, in row order: [(hub, instants, prices)]."""
    hubs = table.column("hub").to_pylist()
    out = []
    start = 0
    while start < len(hubs):
        stop = start
        while stop < len(hubs) and hubs[stop] == hubs[start]:
            stop += 1
        part = table.slice(start, stop - start)
        out.append((hubs[start], instants(part.column("datetime")), part.column("price").to_pylist()))
        start = stop
    return out


def wire_bytes(reader_or_table):
    table = reader_or_table if isinstance(reader_or_table, pa.Table) else reader_or_table.read_all()
    return sum(batch.get_total_buffer_size() for batch in table.to_batches())


# --- list_flights, get_flight_info, get_schema -----------------------------------


def test_list_flights_one_per_data_set_and_ercot_prices(fl, utc_store):
    infos = list(fl.list_flights())
    names = [info.descriptor.path[0].decode() for info in infos]
    assert names == ["day_ahead", "real_time", "real_time_15min", "ancillary_services", "ercot_prices"]
    for name, info in zip(names, infos):
        dataset = utc_store.datasets[DAY_AHEAD if name == "ercot_prices" else name]
        assert [(f.name, f.type) for f in info.schema] == LONG_TYPES
        assert info.total_records == len(dataset) * len(dataset.columns)
        assert len(info.endpoints) == 1 and info.endpoints[0].locations == []  # redeem here
        table = fl.do_get(info.endpoints[0].ticket).read_all()  # the ticket works as given
        assert table.schema.equals(info.schema)
        assert table.num_rows == info.total_records
        assert wire_bytes(table) == info.total_bytes
    assert infos[0].total_records == 22463 * 15  # day-ahead: 22,463 hours x 15 settlement points
    assert infos[3].total_records == 0  # no ancillary prices in this data: an empty flight, not an error


def test_ercot_prices_is_day_ahead_long_all_points(fl, utc_store):
    by_path = fl.do_get(fl.get_flight_info(flight.FlightDescriptor.for_path("ercot_prices")).endpoints[0].ticket)
    ercot_prices = by_path.read_all()
    day_ahead = fl.do_get(flight.Ticket(tickets.dataset_ticket("day_ahead"))).read_all()
    assert ercot_prices.equals(day_ahead)
    hubs = ercot_prices.column("hub").unique().to_pylist()
    assert hubs == [p for p in utc_store.settlement_points if p in utc_store.datasets[DAY_AHEAD].columns]
    # the bare name works as a ticket too (what an older client may send)
    assert fl.do_get(flight.Ticket(b"ercot_prices")).read_all().equals(day_ahead)


QUERIES = [
    {"start_date": "2020-11-01", "end_date": "2020-11-01", "hubs": ["HB_NORTH", "HB_HOUSTON"], "price_type": "day_ahead"},
    {"start_date": "2019-04-04", "end_date": "2019-04-07", "hubs": ["HB_PAN", "HB_NORTH"], "price_type": "da"},
    {"start_date": "2021-02-15", "end_date": "2021-02-19", "hubs": ["HB_NORTH", "LZ_WEST"], "price_type": "real_time"},
    {
        "start_date": "2021-02-19T12:00:00Z",
        "end_date": "2021-02-19T18:00:00.000Z",
        "hubs": "HB_NORTH, HB_PAN",
        "price_type": "RT",
        "resolution": "15min",
    },
    {"start_date": "2019-02-01", "end_date": "2019-02-03", "hubs": ["HB_PAN"], "price_type": "rt", "resolution": "15min"},
    {"start_date": "2020-10-31", "end_date": "2020-11-02", "hubs": ["LZ_AEN"], "price_type": "da", "tz": "America/Chicago"},
    {"start_date": "2021-02-16", "end_date": "2021-02-17", "hubs": ["HB_WEST"], "price_type": "combined"},
    {"start_date": "2021-02-16", "end_date": "2021-02-17", "price_type": "ancillary_services"},
    {"start_date": "2030-01-01", "end_date": "2030-01-02", "hubs": ["HB_NORTH"], "price_type": "day_ahead"},
]


@pytest.mark.parametrize("params", QUERIES)
@pytest.mark.parametrize("layout", ["long", "wide"])
def test_flight_equals_http(fl, client, params, layout):
    """Values, nulls and instants: the Flight answer is the HTTP answer."""
    http_instants, http_series = http_answer(client, params)
    table = pull(fl, **params, layout=layout)
    if layout == "long":
        answer = long_answer(table)
        assert [hub for hub, _, _ in answer] == [name for name, prices in http_series if http_instants]
        for (hub, times, prices), (name, http_prices) in zip(answer, http_series):
            assert times == http_instants
            assert prices == http_prices  # None where HTTP says null
    else:
        assert table.column_names == ["datetime"] + [name for name, _ in http_series]
        assert instants(table.column("datetime")) == http_instants
        for name, http_prices in http_series:
            assert table.column(name).to_pylist() == http_prices
    expected_tz = "America/Chicago" if params.get("tz") else "UTC"
    assert table.schema.field("datetime").type == pa.timestamp("ms", tz=expected_tz)


def test_nulls_stay_null(fl):
    """HB_PAN has no prices before 2019-04-06: nulls, never 0.0 or NaN."""
    table = pull(fl, start_date="2019-04-05", end_date="2019-04-06", hubs=["HB_PAN"], price_type="da")
    prices = table.column("price")
    assert prices.null_count == 24 and table.num_rows == 48
    assert not np.isnan(prices.drop_null().to_numpy()).any()


@pytest.mark.parametrize("layout", ["long", "wide"])
@pytest.mark.parametrize(
    "descriptor",
    [
        flight.FlightDescriptor.for_path("real_time_15min"),
        flight.FlightDescriptor.for_command(
            json.dumps({"start_date": "2021-02-01", "end_date": "2021-02-28", "hubs": ["HB_NORTH", "HB_PAN"], "price_type": "rt"})
        ),
        flight.FlightDescriptor.for_command(
            '{"start_date": "2019-04-04", "end_date": "2019-04-07", "hubs": "HB_PAN,HB_WEST", "price_type": "da"}'
        ),
    ],
    ids=["path", "command-rt", "command-da-nulls"],
)
def test_flight_info_and_schema_describe_exactly_what_do_get_sends(fl, descriptor, layout):
    if layout == "wide":  # the same descriptor asking for the wide layout
        if descriptor.descriptor_type == flight.DescriptorType.PATH:
            command = {"dataset": descriptor.path[0].decode(), "layout": "wide"}
        else:
            command = {**json.loads(descriptor.command), "layout": "wide"}
        descriptor = flight.FlightDescriptor.for_command(json.dumps(command))
    info = fl.get_flight_info(descriptor)
    schema = fl.get_schema(descriptor).schema
    reader = fl.do_get(info.endpoints[0].ticket)
    assert reader.schema.equals(schema) and info.schema.equals(schema)
    table = reader.read_all()
    assert table.num_rows == info.total_records
    assert wire_bytes(table) == info.total_bytes
    assert info.descriptor == descriptor


def test_unknown_path_is_not_found_and_server_keeps_serving(fl):
    with pytest.raises(pa.ArrowKeyError, match="no flight 'nope'; use one of day_ahead") as caught:
        fl.get_flight_info(flight.FlightDescriptor.for_path("nope"))
    assert_no_server_internals(str(caught.value))
    assert fl.get_schema(flight.FlightDescriptor.for_path("day_ahead")).schema.names == ["datetime", "hub", "price"]


# --- do_get ----------------------------------------------------------------------


def test_api_md_examples_verbatim(fl):
    # API.md: get_flight_info(FlightDescriptor.for_path("ercot_prices"))
    info = fl.get_flight_info(flight.FlightDescriptor.for_path("ercot_prices"))
    assert info.total_records > 0
    # API.md: do_get(Ticket(json_bytes)) with the query
    # {"start_date": ..., "end_date": ..., "hubs": [...], "price_type": "day_ahead"}
    json_bytes = json.dumps(
        {"start_date": "2020-11-01", "end_date": "2020-11-01", "hubs": ["HB_NORTH"], "price_type": "day_ahead"}
    ).encode()
    reader = fl.do_get(flight.Ticket(json_bytes))
    # "Default result: the long schema datetime: timestamp[ms, tz=UTC], hub: utf8, price: float64 (nullable)"
    assert [(f.name, f.type) for f in reader.schema] == LONG_TYPES
    assert reader.schema.field("price").nullable
    table = reader.read_all()
    assert table.num_rows == 25  # the fall-back day has 25 hours
    assert table.column("price").to_pylist()[1:3] == [21.26, 21.08]  # HE02, then the repeated HE02
    assert set(table.column("hub").to_pylist()) == {"HB_NORTH"}
    # '"layout": "wide" returns one float64 column per hub instead'
    wide = fl.do_get(flight.Ticket(json_bytes[:-1] + b', "layout": "wide"}')).read_all()
    assert wide.schema.names == ["datetime", "HB_NORTH"] and wide.schema.field("HB_NORTH").type == pa.float64()


def test_long_is_wide_melted(fl):
    params = dict(start_date="2021-02-14", end_date="2021-02-20", hubs=["HB_NORTH", "HB_PAN", "LZ_CPS"], price_type="rt", resolution="15min")
    long = pull(fl, **params)
    wide = pull(fl, **params, layout="wide")
    rows = wide.num_rows
    assert long.num_rows == 3 * rows
    for i, hub in enumerate(params["hubs"]):  # ordered by hub as asked, then by time
        part = long.slice(i * rows, rows)
        assert part.column("hub").to_pylist() == [hub] * rows
        assert part.column("datetime").equals(wide.column("datetime"))
        assert part.column("price").equals(wide.column(hub))


def test_both_resolutions(fl):
    """Real-time: hourly means of the native 15-minute intervals, or the intervals."""
    params = dict(start_date="2021-02-19", end_date="2021-02-19", hubs=["HB_NORTH"], price_type="real_time")
    hourly = pull(fl, **params, layout="wide")
    quarter = pull(fl, **params, resolution="15min", layout="wide")
    assert hourly.num_rows == 24 and quarter.num_rows == 96
    assert np.all(np.diff(instants(quarter.column("datetime"))) == 15 * 60_000)
    means = np.asarray(quarter.column("HB_NORTH").to_pylist()).reshape(24, 4).mean(axis=1)
    np.testing.assert_allclose(hourly.column("HB_NORTH").to_numpy(), means, rtol=1e-12)
    # the end of the Uri emergency pricing: ~8,987 in HE09, then 3,210.81 and 32.05 in HE10
    intervals = quarter.column("HB_NORTH").to_pylist()
    assert min(intervals[32:36]) > 8900 and intervals[36:38] == [3210.81, 32.05]


@pytest.mark.parametrize("compression", ["zstd", "lz4", "ZSTD"])
@pytest.mark.parametrize("layout", ["long", "wide"])
def test_compressed_batches_hold_the_same_table(fl, location, utc_store, compression, layout):
    """``"compression"`` asks for IPC-compressed batches, of either ticket
    kind: the client reads the same table as uncompressed (the default)."""
    assert tickets.parse_ticket(json.dumps({**GOOD, "compression": compression}).encode(), utc_store).compression == \
        compression.lower()
    assert tickets.parse_ticket(json.dumps(GOOD).encode(), utc_store).compression is None
    for params in (GOOD, {"dataset": "real_time_15min"}):
        assert pull(fl, **params, layout=layout, compression=compression).equals(pull(fl, **params, layout=layout))
    with ercot_client.PriceClient(location) as prices:
        assert prices.dataset_table("day_ahead", compression=compression).equals(prices.dataset_table("day_ahead"))
        assert prices.table("2020-11-01", "2020-11-01", ["HB_NORTH"], compression=compression, layout=layout).equals(
            prices.table("2020-11-01", "2020-11-01", ["HB_NORTH"], layout=layout))


def test_whole_data_set_tickets_take_hubs_and_layout(fl, utc_store):
    table = fl.do_get(ticket(dataset="real_time_15min", hubs=["HB_WEST", "HB_NORTH"], layout="wide")).read_all()
    dataset = utc_store.datasets[REAL_TIME_15MIN]
    assert table.column_names == ["datetime", "HB_WEST", "HB_NORTH"]
    assert instants(table.column("datetime")) == dataset.timestamps.tolist()
    assert table.column("HB_NORTH").equals(pa.chunked_array([dataset.columns["HB_NORTH"]]))


def test_batches_are_bounded_and_the_schema_comes_first(fl, server, utc_store, monkeypatch):
    reader = fl.do_get(flight.Ticket(tickets.dataset_ticket("day_ahead")))
    assert reader.schema.names == ["datetime", "hub", "price"]  # before any batch is read
    sizes = [chunk.data.num_rows for chunk in reader]
    assert len(sizes) > 1 and max(sizes) <= arrow.MAX_BATCH_ROWS
    assert sum(sizes) == 22463 * 15
    # a small bound, to see the byte limit at work in both layouts
    monkeypatch.setattr(arrow, "MAX_BATCH_ROWS", 1000)
    monkeypatch.setattr(arrow, "MAX_BATCH_BYTES", 16 * 1024)
    for layout in ("wide", "long"):
        reader = fl.do_get(ticket(dataset="day_ahead", layout=layout))
        batches = [chunk.data for chunk in reader]
        assert max(b.num_rows for b in batches) < 1000  # the byte bound is the tighter one here
        assert 15 * 1024 < max(b.get_total_buffer_size() for b in batches) <= 16 * 1024
        assert sum(b.num_rows for b in batches) == 22463 * (1 if layout == "wide" else 15)


def _within(buffer, array):
    """True when ``buffer`` points into one of ``array``'s buffers."""
    return any(
        b is not None and b.address <= buffer.address and buffer.address + buffer.size <= b.address + b.size
        for b in array.buffers()
    )


def parts(store, raw):
    selection = tickets.parse_ticket(raw, store)
    return [table for table, _ in arrow.result_parts(selection, arrow.result_schema(selection))]


def test_no_copies_of_the_store(utc_store):
    """Wide batches are views of the store; long batches too, but for the hub column."""
    dataset = utc_store.datasets[DAY_AHEAD]
    times = pa.py_buffer(dataset.timestamps)
    [wide] = parts(utc_store, b'{"dataset": "day_ahead", "layout": "wide"}')
    for batch in wide.to_batches():
        assert times.address <= batch.column(0).buffers()[1].address < times.address + times.size
        for name in batch.schema.names[1:]:
            assert _within(batch.column(name).buffers()[1], dataset.columns[name])
    long = parts(utc_store, b'{"dataset": "day_ahead", "hubs": ["HB_PAN", "HB_WEST"]}')
    assert len(long) == 2  # one part per hub: one hub column alive at a time
    for hub, part in zip(["HB_PAN", "HB_WEST"], long):
        for batch in part.to_batches():
            assert _within(batch.column("price").buffers()[1], dataset.columns[hub])
            assert times.address <= batch.column("datetime").buffers()[1].address < times.address + times.size


# --- bad tickets -----------------------------------------------------------------

GOOD = {"start_date": "2020-11-01", "end_date": "2020-11-02", "hubs": ["HB_NORTH"], "price_type": "day_ahead"}
BAD_TICKETS = [
    (b"SELECT * FROM prices", "the ticket is not JSON", 'send a JSON object: {"start_date"'),
    (b"\xff\xfe", "the ticket is not UTF-8 text", "send a JSON object"),
    (b'["HB_NORTH"]', "the ticket is a JSON list, not an object", "send a JSON object"),
    (json.dumps({**GOOD, "hubs": 5}).encode(), "hubs must be a list of names", 'send hubs as "HB_NORTH,HB_WEST"'),
    (json.dumps({**GOOD, "start_date": 2020.5}).encode(), "start_date must be a string, not float", "send start_date as text, or as an integer of epoch"),
    (json.dumps({**GOOD, "layout": 2}).encode(), "unknown layout 2", '"layout": "wide"'),
    (json.dumps({**GOOD, "layout": "tall"}).encode(), "unknown layout 'tall'", '"layout": "long" (the default)'),
    (json.dumps({**GOOD, "hubs": ["HB_NORTH", "HB_NOWHERE"]}).encode(), "unknown settlement point: HB_NOWHERE", "available_hubs action"),
    (json.dumps({**GOOD, "start_date": "2020-11-03"}).encode(), "end_date is before start_date", "swap start_date and end_date"),
    (
        json.dumps({**GOOD, "start_date": "2019-01-01", "end_date": "2021-12-31"}).encode(),
        f"the range is longer than the maximum of {MAX_RANGE_DAYS} days",
        '{"dataset": "real_time_15min"',
    ),
    (json.dumps({**GOOD, "price_type": "spot"}).encode(), "unknown price_type 'spot'", "use one of day_ahead (da)"),
    (json.dumps({**GOOD, "resolution": "15min"}).encode(), "resolution=15min is for real_time only", "price_type=real_time"),
    (json.dumps({**GOOD, "hub": "HB_NORTH"}).encode(), "unknown key in the ticket: hub", "a query ticket takes start_date"),
    (b'{"dataset": "nodal"}', "unknown data set 'nodal'", "use one of day_ahead, real_time"),
    (b'{"dataset": "day_ahead", "hubs": ["XX"]}', "unknown settlement point: XX", "available_hubs"),
    (b'{"dataset": "day_ahead", "start_date": "2020-01-01"}', "unknown key in the ticket: start_date", "a data set ticket takes dataset, hubs, aggregate, stat, block, layout"),
    (b'{"dataset": "day_ahead", "compression": "brotli"}', "unknown compression 'brotli'", '"compression": "zstd" or "lz4"'),
    (json.dumps({**GOOD, "compression": 9}).encode(), "unknown compression 9", "leave it out for uncompressed batches"),
]


def assert_no_server_internals(text):
    """No traceback, file path or Python type name in what the server tells a
    client (pyarrow's client adds its own context after the server's text)."""
    text = text.split(". gRPC client debug context")[0]
    for leak in ("Traceback", "File \"", ".py", "Error:", "ValueError", "KeyError", "/work", "site-packages"):
        assert leak not in text, (leak, text)


@pytest.mark.parametrize("raw, message, fix", BAD_TICKETS, ids=[m for _, m, _ in BAD_TICKETS])
def test_bad_ticket_is_invalid_argument_then_the_server_keeps_serving(fl, raw, message, fix):
    with pytest.raises(pa.ArrowInvalid) as caught:  # pyarrow's class for gRPC INVALID_ARGUMENT
        fl.do_get(flight.Ticket(raw)).read_all()
    text = str(caught.value)
    assert "gRPC client debug context: INVALID_ARGUMENT:" in text
    assert text.startswith(message), text  # the message first, then what to change
    assert fix in text.split(". Detail:")[0]
    assert_no_server_internals(text)
    for call in (fl.get_flight_info, fl.get_schema):  # a command descriptor holds a ticket too
        with pytest.raises(pa.ArrowInvalid) as caught:
            call(flight.FlightDescriptor.for_command(raw))
        assert str(caught.value).startswith(message) and fix in str(caught.value).split(". Detail:")[0]
    assert pull(fl, **GOOD).num_rows == 49  # the same server answers the next call


def test_server_fault_is_internal_and_not_leaked(fl, monkeypatch):
    def broken(store, checked):
        raise RuntimeError("secret detail")

    monkeypatch.setattr(query_run, "run_query", broken)
    with pytest.raises(flight.FlightInternalError) as caught:
        pull(fl, **GOOD)
    assert "internal server error; the fault is logged on the server" in str(caught.value)
    assert "secret detail" not in str(caught.value)
    monkeypatch.undo()
    assert pull(fl, **GOOD).num_rows == 49


# --- actions ---------------------------------------------------------------------


def action(fl, name):
    return [json.loads(r.body.to_pybytes()) for r in fl.do_action(flight.Action(name, b""))]


def test_actions(fl, client, utc_store):
    assert [a.type for a in fl.list_actions()] == ["healthcheck", "available_hubs", "describe", "reload", "CreatePreparedStatement",
                                                 "ClosePreparedStatement"]
    with pytest.raises(flight.FlightUnauthorizedError, match="reloads over Flight need API keys"):
        action(fl, "reload")  # an open server takes no reloads from anyone
    [health] = action(fl, "healthcheck")
    assert health["status"] == "healthy" and health["service"] == "ercot_price_service"
    assert dt.datetime.fromisoformat(health["timestamp"].replace("Z", "+00:00")).tzinfo is not None
    assert action(fl, "available_hubs") == [client.simulate_get("/api/available_hubs").json]
    [described] = action(fl, "describe")
    assert described["datasets"]["day_ahead"]["rows"] == 22463
    assert described["datasets"]["real_time_15min"]["interval_minutes"] == 15
    assert described["max_batch_rows"] == arrow.MAX_BATCH_ROWS
    assert described["max_range_days"] == MAX_RANGE_DAYS
    with pytest.raises(pa.ArrowKeyError, match="unknown action 'reboot'; use one of healthcheck") as caught:
        action(fl, "reboot")
    assert_no_server_internals(str(caught.value))
    assert action(fl, "healthcheck")[0]["status"] == "healthy"


def test_a_server_without_data_says_so(tmp_path):
    empty = load_store(tmp_path)
    served = ercot_flight.PriceFlightServer(empty, "grpc://127.0.0.1:0")
    try:
        with flight.connect(f"grpc://127.0.0.1:{served.port}") as fl:
            with pytest.raises(flight.FlightUnavailableError, match="no prices were loaded"):
                action(fl, "healthcheck")
            infos = list(fl.list_flights())
            assert [i.total_records for i in infos] == [0] * 5
            assert fl.do_get(infos[0].endpoints[0].ticket).read_all().num_rows == 0
    finally:
        served.shutdown()


# --- the Python client -----------------------------------------------------------

README_EXAMPLE = """\
from ercot_fast.client import PriceClient

with PriceClient("grpc://localhost:50051") as prices:
    # Winter Storm Uri, real-time, 15-minute intervals: a long DataFrame (datetime, hub, price)
    uri = prices.dataframe("2021-02-14", "2021-02-20", ["HB_NORTH", "HB_HOUSTON"],
                           price_type="real_time", resolution="15min")
    print(uri.groupby("hub")["price"].max())

    # every day-ahead hour in the data, one column per settlement point
    day_ahead = prices.dataset_dataframe("day_ahead", layout="wide")
    print(day_ahead.set_index("datetime").resample("MS").mean().round(2))
"""


def test_readme_example_runs(location, capsys):
    pytest.importorskip("pandas")
    code = README_EXAMPLE.replace("grpc://localhost:50051", location)
    namespace = {}
    exec(compile(code, "README.md", "exec"), namespace)
    out = capsys.readouterr().out
    assert "HB_NORTH" in out and "9315.45" in out  # the RT peak of 2021-02-17
    assert namespace["day_ahead"].shape == (22463, 16)
    assert str(namespace["uri"].dtypes["datetime"]) == "datetime64[ms, UTC]"


def test_client_tables_and_frames(location, client):
    pandas = pytest.importorskip("pandas")
    with ercot_client.PriceClient(location) as prices:
        params = dict(start_date="2019-04-04", end_date="2019-04-07", hubs=["HB_PAN", "HB_NORTH"], price_type="da")
        table = prices.table(**params)
        http_instants, http_series = http_answer(client, params)
        assert long_answer(table) == [(hub, http_instants, values) for hub, values in http_series]
        frame = prices.dataframe(**params, layout="wide")
        assert isinstance(frame, pandas.DataFrame) and list(frame.columns) == ["datetime", "HB_PAN", "HB_NORTH"]
        assert frame["HB_PAN"].isna().sum() == 48  # nulls arrive as NaN in pandas
        assert frame["datetime"].iloc[0] == pandas.Timestamp("2019-04-04T05:00:00Z")
        central = prices.table(**params, tz="America/Chicago")
        assert central.schema.field("datetime").type.tz == "America/Chicago"
        assert instants(central.column("datetime")) == instants(table.column("datetime"))
        aware = dt.datetime(2019, 4, 4, 5, tzinfo=dt.timezone.utc)
        assert prices.table(aware, "2019-04-04T05:00:00Z", "HB_NORTH").num_rows == 1
        assert prices.available_hubs() == client.simulate_get("/api/available_hubs").json
        assert prices.health()["status"] == "healthy"
        assert prices.describe()["max_range_days"] == MAX_RANGE_DAYS
        with pytest.raises(pa.ArrowInvalid, match="unknown settlement point: NOPE"):
            prices.table("2020-01-01", "2020-01-02", ["NOPE"])
        with pytest.raises(ValueError, match="no time zone"):
            prices.table(dt.datetime(2020, 1, 1), "2020-01-02", ["HB_NORTH"])
    frame = ercot_client.get_prices("2020-11-01", "2020-11-01", ["HB_NORTH"], location=location)
    assert frame["price"].tolist()[1:3] == [21.26, 21.08]


def test_dataframes_need_pandas_tables_do_not(location, monkeypatch):
    monkeypatch.setitem(sys.modules, "pandas", None)  # as if pandas were not installed
    with ercot_client.PriceClient(location) as prices:
        assert prices.table(**GOOD).num_rows == 49
        with pytest.raises(ImportError, match="DataFrames need pandas: `pip install pandas`"):
            prices.dataframe(**GOOD)


# --- the seam ----------------------------------------------------------------------


class RecordingFactory(flight.ServerMiddlewareFactory):
    """Sees every call, as authentication or metrics will."""

    def __init__(self):
        self.calls = []

    def start_call(self, info, headers):
        self.calls.append(info.method)
        return None


def test_every_flight_call_passes_the_middleware_seam(utc_store):
    seen = RecordingFactory()
    served = ercot_flight.PriceFlightServer(utc_store, "grpc://127.0.0.1:0", middleware={"record": seen})
    try:
        with flight.connect(f"grpc://127.0.0.1:{served.port}") as client:
            list(client.list_flights())
            client.do_get(flight.Ticket(tickets.dataset_ticket("ancillary_services"))).read_all()
            with pytest.raises(pa.ArrowInvalid):
                client.do_get(flight.Ticket(b"garbage")).read_all()
            list(client.do_action(flight.Action("healthcheck", b"")))
    finally:
        served.shutdown()
    methods = flight.FlightMethod
    assert seen.calls == [methods.LIST_FLIGHTS, methods.DO_GET, methods.DO_GET, methods.DO_ACTION]


def test_unsupported_calls_are_unimplemented_without_internals(fl):
    writer, _ = fl.do_put(flight.FlightDescriptor.for_path("day_ahead"), pa.schema([("x", pa.int64())]))
    with pytest.raises(pa.ArrowNotImplementedError) as caught:
        writer.close()
    assert "read-only" in str(caught.value)
    assert_no_server_internals(str(caught.value))
    assert pull(fl, **GOOD).num_rows == 49


# --- replicas: --flight-advertise --------------------------------------------------


@pytest.fixture(scope="module")
def replicas(utc_store):
    """Two servers over one store, each advertising both (as two replicas would)."""
    from serving import free_port

    ports = [free_port(), free_port()]
    advertise = [f"grpc://127.0.0.1:{port}" for port in ports]
    servers = [ercot_flight.PriceFlightServer(utc_store, where, MAX_RANGE_DAYS, advertise=advertise, counters=Counters())
               for where in advertise]
    try:
        yield advertise, servers
    finally:
        for served in servers:
            served.shutdown()


@pytest.mark.parametrize("request_ticket", [
    {"start_date": "2021-02-10", "end_date": "2021-02-20", "hubs": ["HB_NORTH", "HB_WEST", "LZ_HOUSTON"], "price_type": "rt",
     "resolution": "15min"},
    {"start_date": "2021-02-10", "end_date": "2021-02-20", "hubs": ["HB_NORTH", "HB_WEST"], "price_type": "da", "layout": "wide"},
    {"dataset": "day_ahead", "hubs": ["HB_HOUSTON", "HB_NORTH"]},
    {"dataset": "real_time_15min", "aggregate": "daily", "stat": "max"},
    {"start_date": "2021-02-14", "end_date": "2021-02-14", "hubs": ["HB_NORTH"], "price_type": "da", "aggregate": "daily"},
])
def test_a_pull_is_spread_over_the_advertised_replicas_and_joined_as_one(replicas, location, request_ticket):
    advertise, servers = replicas
    raw = json.dumps(request_ticket).encode()
    with flight.connect(location) as plain:
        whole = plain.do_get(flight.Ticket(raw)).read_all()
    with flight.connect(advertise[0]) as first:
        info = first.get_flight_info(flight.FlightDescriptor.for_command(raw))
    assert [[loc.uri.decode() for loc in e.locations] for e in info.endpoints] == [[where] for where in advertise]
    assert info.total_records == whole.num_rows
    before = [s._counters.counts.get(("ercot_fast_flight_rows", (("method", "DoGet"),)), 0) for s in servers]
    with ercot_client.PriceClient(advertise[1]) as prices:
        assert prices.describe()["flight_locations"] == advertise
        spread = prices.read(request_ticket)
    assert spread.equals(whole)
    after = [s._counters.counts.get(("ercot_fast_flight_rows", (("method", "DoGet"),)), 0) for s in servers]
    assert all(a > b for a, b in zip(after, before)) or whole.num_rows < 2  # each replica sent its part
    assert sum(a - b for a, b in zip(after, before)) == whole.num_rows


def test_a_part_ticket_is_checked(fl):
    for part in ([2, 2], [0], "0/2", [0, 1000], [True, 2]):
        with pytest.raises(pa.ArrowInvalid, match=r"is not \[i, n\]"):
            fl.do_get(flight.Ticket(json.dumps({"dataset": "day_ahead", "part": part}).encode())).read_all()
