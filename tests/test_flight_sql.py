"""Arrow Flight SQL with real clients against the real Flight server on
127.0.0.1, over the store built from the real ERCOT CSVs: ADBC
(``adbc_driver_flightsql.dbapi``), SQLAlchemy through flightsql-dbapi (what
Superset uses), the raw protocol through ``pyarrow.flight``, and the
service's own client; values checked against the HTTP API."""
import json
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
import warnings
from pathlib import Path

import adbc_driver_flightsql.dbapi as adbc
import pyarrow as pa
import pyarrow.flight as flight
import pyarrow.parquet as pq
import pytest
import sqlalchemy as sa

from ercot_fast.client import PriceClient
from ercot_fast.flight import server as ercot_flight
from ercot_fast.flight import sql, sql_messages
from ercot_fast.sql import tables
from serving import Served, fetch

URI_DAY = "SELECT avg(price) AS mean FROM day_ahead WHERE settlement_point = 'HB_NORTH' AND market_day = DATE '2021-02-17'"
REPEATED = ("SELECT interval_start, hour_ending, repeated_hour, price FROM day_ahead "
            "WHERE settlement_point = ? AND market_day = ? AND hour_ending = 2 ORDER BY interval_start")
TABLES = ["ancillary_services", "ancillary_services_wide", "day_ahead", "day_ahead_wide", "real_time",
          "real_time_15min", "real_time_15min_wide", "real_time_wide"]


@pytest.fixture(scope="module")
def server(utc_store):
    served = ercot_flight.PriceFlightServer(utc_store, "grpc://127.0.0.1:0", 1000,
                                            flight_sql=sql.FlightSql(time_limit_s=2, max_result_mb=64))
    try:
        yield served
    finally:
        served.shutdown()


@pytest.fixture(scope="module")
def uri(server):
    return f"grpc://127.0.0.1:{server.port}"


@pytest.fixture
def connection(uri):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # "Cannot disable autocommit": a read-only service has no transactions
        conn = adbc.connect(uri)
    try:
        yield conn
    finally:
        conn.close()


def http_prices(client, **params):
    resp = client.simulate_get("/api/prices", params=params)
    assert resp.status_code == 200, resp.text
    return resp.json


# --- ADBC -------------------------------------------------------------------------------------------


def test_adbc_execute_equals_the_http_api(connection, client):
    with connection.cursor() as cur:
        cur.execute(URI_DAY)
        [[mean]] = cur.fetch_arrow_table().to_pydict().values()
    http = http_prices(client, start_date="2021-02-17", end_date="2021-02-17", hubs="HB_NORTH", price_type="da",
                       aggregate="daily")
    assert mean == 8833.655 == http["data"][0]["prices"][0]  # 8,833.66 rounded
    with connection.cursor() as cur:
        cur.execute("SELECT interval_start, price FROM day_ahead WHERE settlement_point = 'HB_NORTH' "
                    "AND market_day = DATE '2021-02-17' ORDER BY 1")
        table = cur.fetch_arrow_table()
    day = http_prices(client, start_date="2021-02-17", end_date="2021-02-17", hubs="HB_NORTH", price_type="da")
    assert table.column("price").to_pylist() == day["data"][0]["prices"]
    stamps = [t.strftime("%Y-%m-%dT%H:%M:%SZ") for t in table.column("interval_start").to_pylist()]
    assert stamps == day["timestamps"]


def test_adbc_parameters_and_both_repeated_hour_prices(connection, client):
    with connection.cursor() as cur:
        cur.execute(REPEATED, ("HB_NORTH", "2020-11-01"))
        rows = cur.fetch_arrow_table().to_pylist()
    assert [(r["hour_ending"], r["repeated_hour"]) for r in rows] == [(2, False), (2, True)]
    fall_back = http_prices(client, start_date="2020-11-01T06:00:00Z", end_date="2020-11-01T07:00:00Z",
                            hubs="HB_NORTH", price_type="da")
    assert [r["price"] for r in rows] == fall_back["data"][0]["prices"] and len(set(fall_back["timestamps"])) == 2
    with connection.cursor() as cur:  # the same prepared statement, other values
        cur.execute(REPEATED, ("HB_WEST", "2020-11-01"))
        assert cur.fetch_arrow_table().num_rows == 2


def test_adbc_get_objects_and_table_schema(connection):
    objects = connection.adbc_get_objects().read_all().to_pylist()
    assert [o["catalog_name"] for o in objects] == ["ercot"]
    [schema] = objects[0]["catalog_db_schemas"]
    assert schema["db_schema_name"] == "main"
    assert sorted(t["table_name"] for t in schema["db_schema_tables"]) == TABLES
    columns = connection.adbc_get_table_schema("real_time_15min")
    assert columns.names == ["interval_start", "interval_end", "market_day", "hour_ending", "interval", "repeated_hour",
                             "block", "settlement_point", "price"]
    assert columns.field("price").type == pa.float64() and columns.field("market_day").type == pa.date32()
    assert "product" in connection.adbc_get_table_schema("ancillary_services").names
    # the SQL types, for tools that show them (Flight SQL's column metadata)
    deep = connection.adbc_get_objects(depth="columns", table_name_filter="day_ahead").read_all().to_pylist()
    [table] = deep[0]["catalog_db_schemas"][0]["db_schema_tables"]
    assert {c["column_name"]: c["xdbc_type_name"] for c in table["table_columns"]} == {
        "interval_start": "TIMESTAMP WITH TIME ZONE", "interval_end": "TIMESTAMP WITH TIME ZONE", "market_day": "DATE",
        "hour_ending": "INTEGER", "repeated_hour": "BOOLEAN", "block": "VARCHAR", "settlement_point": "VARCHAR",
        "price": "DOUBLE"}


def test_adbc_qualified_names_and_wide_tables(connection, utc_store):
    with connection.cursor() as cur:
        cur.execute('SELECT count(*) AS n FROM ercot.main.day_ahead_wide')
        assert cur.fetch_arrow_table().column("n").to_pylist() == [len(utc_store.datasets["day_ahead"])]


# --- SQLAlchemy (flightsql-dbapi, Superset's driver) -------------------------------------------------------


@pytest.fixture
def engine(server):
    engine = sa.create_engine(f"datafusion://127.0.0.1:{server.port}?insecure=true")
    try:
        yield engine
    finally:
        engine.dispose()


def test_sqlalchemy_inspect_select_and_liveness(engine, client):
    inspector = sa.inspect(engine)
    assert inspector.get_table_names() == TABLES
    assert [c["name"] for c in inspector.get_columns("day_ahead")] == [
        "interval_start", "interval_end", "market_day", "hour_ending", "repeated_hour", "block", "settlement_point", "price"]
    with engine.connect() as conn:
        assert conn.execute(sa.text("SELECT 1")).scalar() == 1
        day_ahead = sa.Table("day_ahead", sa.MetaData(), autoload_with=engine)
        query = (sa.select(day_ahead.c.market_day, sa.func.avg(day_ahead.c.price))
                 .where(day_ahead.c.settlement_point == "HB_NORTH", day_ahead.c.block == "5x16",
                        day_ahead.c.market_day.between("2020-01-01", "2020-12-31"))
                 .group_by(day_ahead.c.market_day).order_by(day_ahead.c.market_day))
        rows = conn.execute(query).fetchall()
    # the daily on-peak means of 2020 (262 weekdays less the 5 NERC holidays on weekdays): as the HTTP API computes them
    http = http_prices(client, start_date="2020-01-01", end_date="2020-12-31", hubs="HB_NORTH",
                       price_type="da", aggregate="daily", block="5x16")
    means = [p for p in http["data"][0]["prices"] if p is not None]
    assert len(rows) == len(means) == 262 - 5
    assert [round(r[1], 9) for r in rows] == [round(p, 9) for p in means]


# --- the protocol, with pyarrow.flight ---------------------------------------------------------------------


def command(message):
    return flight.FlightDescriptor.for_command(sql_messages.pack(message))


def test_flight_info_schema_equals_do_get_schema(uri):
    with flight.connect(uri) as fl:
        for message in (sql_messages.CommandStatementQuery(query=URI_DAY),
                        sql_messages.CommandStatementQuery(query="SELECT * FROM real_time_15min WHERE false"),
                        sql_messages.CommandGetTables(include_schema=True),
                        sql_messages.CommandGetSqlInfo(info=[0, 2, 3, 504, 8])):
            info = fl.get_flight_info(command(message))
            got = fl.do_get(info.endpoints[0].ticket).read_all()
            assert got.schema == info.schema
            assert fl.get_schema(command(message)).schema == info.schema


def test_sql_info_what_clients_ask(uri):
    with flight.connect(uri) as fl:
        info = fl.get_flight_info(command(sql_messages.CommandGetSqlInfo(info=[0, 2, 3, 504, 8])))
        values = {r["info_name"]: r["value"] for r in fl.do_get(info.endpoints[0].ticket).read_all().to_pylist()}
    assert values == {0: "ercot_fast", 2: pa.__version__, 3: True, 504: '"', 8: 0}


def test_prepared_statement_has_a_real_schema_and_is_not_an_update(uri):
    """JDBC (DBeaver) always prepares and takes an empty dataset_schema for an UPDATE."""
    with flight.connect(uri) as fl:
        request = sql_messages.pack(sql_messages.ActionCreatePreparedStatementRequest(query=URI_DAY))
        [result] = fl.do_action(flight.Action("CreatePreparedStatement", request))
        created = sql_messages.unpack(result.body.to_pybytes())
        assert created.HasField("is_update") and not created.is_update
        assert pa.ipc.read_schema(pa.py_buffer(created.dataset_schema)) == pa.schema([("mean", pa.float64())])
        closing = sql_messages.ActionClosePreparedStatementRequest(prepared_statement_handle=created.prepared_statement_handle)
        list(fl.do_action(flight.Action("ClosePreparedStatement", sql_messages.pack(closing))))
        closed = sql_messages.CommandPreparedStatementQuery(prepared_statement_handle=created.prepared_statement_handle)
        with pytest.raises(KeyError, match="no such prepared statement"):  # NOT_FOUND
            fl.get_flight_info(command(closed))


def test_json_tickets_keep_working_beside_flight_sql(uri):
    with flight.connect(uri) as fl:
        ticket = {"start_date": "2021-02-17", "end_date": "2021-02-17", "hubs": ["HB_NORTH"], "price_type": "da"}
        assert fl.do_get(flight.Ticket(json.dumps(ticket).encode())).read_all().num_rows == 24
        assert len(list(fl.list_flights())) == 5


# --- refused writes, limits, bad SQL: clear errors, and the server keeps serving ----------------------------


@pytest.mark.parametrize(
    "query, words",
    [
        ("DROP VIEW day_ahead", "DROP statements are refused: the service is read-only"),
        ("CREATE TABLE x AS SELECT 1", "CREATE statements are refused"),
        ("INSERT INTO day_ahead_wide VALUES (1)", "INSERT statements are refused"),
        ("SELECT * FROM read_csv('/etc/passwd')", "file system operations are disabled"),
        ("SELEC 1", "syntax error"),
        ("SELECT * FROM nope", "nope does not exist"),
        ("SELECT 1; SELECT 2", "2 statements sent"),
        ("   ", "the query is empty"),
    ],
)
def test_bad_sql_is_invalid_argument_then_serving(connection, query, words):
    with connection.cursor() as cur:
        with pytest.raises(adbc.ProgrammingError) as caught:
            cur.execute(query)
        assert "INVALID_ARGUMENT" in str(caught.value) and words in str(caught.value)
        assert "Traceback" not in str(caught.value) and "/ercot_fast/" not in str(caught.value)
        cur.execute("SELECT 1 AS one")
        assert cur.fetch_arrow_table().column("one").to_pylist() == [1]


def test_updates_through_do_put_are_refused(uri):
    with flight.connect(uri) as fl:
        descriptor = command(sql_messages.CommandStatementUpdate(query="DELETE FROM day_ahead_wide"))
        writer, _ = fl.do_put(descriptor, pa.schema([]))
        with pytest.raises(pa.ArrowInvalid, match="read-only"):
            writer.close()


def test_a_query_over_the_time_limit_is_stopped(connection, uri):
    with connection.cursor() as cur:
        with pytest.raises(adbc.Error) as caught:
            cur.execute("SELECT count(*) FROM range(100000000000) a, range(10) b")
            cur.fetch_arrow_table()  # the query runs when its result is fetched (DoGet)
        assert "TIMEOUT" in str(caught.value) and "longer than the limit of 2 s" in str(caught.value)
        cur.execute(URI_DAY)
        assert cur.fetch_arrow_table().num_rows == 1


def test_a_result_over_the_size_limit_is_refused(uri):
    with PriceClient(uri) as prices:
        with pytest.raises(pa.ArrowInvalid, match="over the limit of 64 MB"):
            prices.sql("SELECT * FROM range(100000000)")


def test_unimplemented_commands_say_so(uri):
    with flight.connect(uri) as fl:
        # UNIMPLEMENTED is pyarrow's ArrowNotImplementedError
        with pytest.raises(pa.ArrowNotImplementedError, match="CommandGetPrimaryKeys is not implemented"):
            fl.get_flight_info(command(sql_messages.CommandGetPrimaryKeys(table="day_ahead")))
        with pytest.raises(pa.ArrowNotImplementedError, match="BeginTransaction is not supported"):
            list(fl.do_action(flight.Action("BeginTransaction", b"")))


# --- the Python client, and reloads --------------------------------------------------------------------------


def test_python_client_sql(uri, client):
    with PriceClient(uri) as prices:
        table = prices.sql(URI_DAY)
        frame = prices.sql_dataframe(REPEATED, ["HB_NORTH", "2020-11-01"])
    assert table.column("mean").to_pylist() == [8833.655]
    assert frame["repeated_hour"].tolist() == [False, True]


def test_queries_follow_a_new_store(utc_store, fixture_store):
    """Each store gets its engine; a query sees one store whole."""
    service = sql.FlightSql()
    counts = {}
    for store in (utc_store, fixture_store):
        engine = service.engine(store)
        assert service.engine(store) is engine
        counts[id(store)] = engine.execute("SELECT count(*) AS n FROM day_ahead_wide").column("n").to_pylist()
        service.release()
    assert counts[id(utc_store)] == [len(utc_store.datasets["day_ahead"])]
    assert counts[id(fixture_store)] == [len(fixture_store.datasets["day_ahead"])]


def test_time_columns_on_the_dst_days(utc_store):
    columns = tables.time_columns(utc_store.datasets["day_ahead"])
    days = columns["market_day"].cast(pa.string()).to_pylist()
    hours = columns["hour_ending"].to_pylist()
    spring = [h for d, h in zip(days, hours) if d == "2020-03-08"]
    fall = [h for d, h in zip(days, hours) if d == "2020-11-01"]
    assert spring == [1, 2] + list(range(4, 25))  # no hour ending 03
    assert fall == [1, 2, 2] + list(range(3, 25))
    repeated = [r for d, r in zip(days, columns["repeated_hour"].to_pylist()) if d == "2020-11-01"]
    assert repeated == [False, False, True] + [False] * 22


def test_the_engine_benchmark_agrees_with_duckdb_over_the_parquet_files(tmp_path):
    """bench/bench_sql.py in its shortest mode: the store's SQL tables answer
    our three queries as DataFusion over the same arrays and as DuckDB over the
    Parquet files (UNPIVOT and Central time written by hand) do."""
    bench = Path(__file__).resolve().parents[1] / "bench" / "bench_sql.py"
    out = tmp_path / "sql.json"
    subprocess.run([sys.executable, str(bench), "--repeat", "1", "--out", str(out)], check=True, capture_output=True)
    results = json.loads(out.read_text())["results"]
    # at most 20 points x 6 years x 12 months (the synthetic data leaves a few months of a few points empty)
    assert 1400 < results["monthly on-peak means, all 15-minute data"]["rows"] <= 20 * 72
    assert results["DA-RT spread of a year, by hour"]["rows"] > 20 * 8000


def test_serve_answers_sql_and_follows_a_reload(utc_dir, tmp_path):
    """`ercot-fast serve` as users run it: ADBC against its Flight child, a
    query over the SQL time limit of --sql-timeout, then a reload (SIGHUP) that
    brings real-time data: the same connection sees the new store whole."""
    data = tmp_path / "data"
    (data / "flattened").mkdir(parents=True)
    for day_ahead in (utc_dir / "flattened").glob("DA_prices_*.parquet"):
        shutil.copy(day_ahead, data / "flattened")
    served = Served(["--data-dir", str(data), "--workers", "1", "--worker-class", "sync", "--sql-timeout", "1"], {})
    try:
        served.wait_ready()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            conn = adbc.connect(served.flight_location)

        def rows(table):
            with conn.cursor() as cur:
                cur.execute(f"SELECT count(*) AS n FROM {table}")
                return cur.fetch_arrow_table().column("n").to_pylist()[0]

        assert rows("real_time_15min_wide") == 0 and rows("day_ahead_wide") == 22463  # 2019-2021, hourly (some DA hours missing)
        outcome = []

        def slow_query():
            with conn.cursor() as cur:
                try:
                    cur.execute("SELECT count(*) FROM range(100000000000) a, range(10) b")
                    cur.fetch_arrow_table()
                except adbc.Error as exc:
                    outcome.append(str(exc))

        slow = threading.Thread(target=slow_query)
        slow.start()
        # the JSON API answers while the SQL query runs (another process)
        status, _, body = fetch(f"{served.base}/api/prices?start_date=2021-02-17&end_date=2021-02-17&hubs=HB_NORTH&price_type=da")
        slow.join(timeout=30)
        assert status == 200 and len(json.loads(body)["timestamps"]) == 24
        assert outcome and "longer than the limit of 1 s" in outcome[0]
        for real_time in (utc_dir / "flattened").glob("RT_prices_15min_*.parquet"):
            shutil.copy(real_time, data / "flattened")
        os.kill(served.proc.pid, signal.SIGHUP)
        deadline = time.monotonic() + 30
        while rows("real_time_15min_wide") != 8160:
            assert time.monotonic() < deadline, "SQL did not follow the reload"
            time.sleep(0.2)
        files = [pq.read_table(path) for path in (data / "flattened").glob("RT_prices_15min_*.parquet")]
        present = sum(len(c) - c.null_count for t in files for n, c in zip(t.column_names, t.columns) if n != "datetime_ts")
        assert rows("real_time_15min") == present  # the long view of the new store: a row per price
        conn.close()
    finally:
        log = served.stop()
    assert served.proc.returncode == 0, log
    assert "Traceback" not in log


def test_a_slow_query_does_not_hold_up_other_clients(utc_store):
    """While one client's query runs into the time limit, others are answered."""
    served = ercot_flight.PriceFlightServer(utc_store, "grpc://127.0.0.1:0", 1000, flight_sql=sql.FlightSql(time_limit_s=5))
    uri = f"grpc://127.0.0.1:{served.port}"
    slow_error = []

    def slow():
        with PriceClient(uri) as prices:
            try:
                prices.sql("SELECT count(*) FROM range(100000000000) a, range(10) b")
            except flight.FlightError as exc:
                slow_error.append(str(exc))

    thread = threading.Thread(target=slow)
    try:
        thread.start()
        time.sleep(0.3)  # the slow query is running
        with PriceClient(uri) as prices:
            means = [prices.sql(URI_DAY).column("mean").to_pylist() for _ in range(5)]
            hubs = prices.available_hubs()
        still_running = thread.is_alive()
        thread.join(timeout=30)
    finally:
        served.shutdown()
    assert means == [[8833.655]] * 5 and "HB_NORTH" in hubs
    assert still_running  # the others were answered while it ran
    assert slow_error and "longer than the limit of 5 s" in slow_error[0]
