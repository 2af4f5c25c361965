"""Arrow Flight SQL on the Flight port, beside the JSON tickets: what ADBC,
flightsql-dbapi (SQLAlchemy, Superset) and JDBC clients send, answered from
the SQL engine over the live store (``sql.engine``).

Implemented: statement queries and their tickets; prepared statements
(``CreatePreparedStatement`` with the real result schema and
``is_update=false``, parameters bound by DoPut, ``ClosePreparedStatement``);
``GetSqlInfo``, ``GetCatalogs``, ``GetDbSchemas``, ``GetTables`` (with table
schemas), ``GetTableTypes``. The service is read-only: updates are refused;
every other Flight SQL command is UNIMPLEMENTED, saying so.

Tickets: a statement's is ``TicketStatementQuery`` holding the SQL text (the
server keeps nothing); a prepared statement's is its
``CommandPreparedStatementQuery``; a metadata command's is the command.
"""
import collections
import re
import threading
import uuid

import pyarrow as pa
import pyarrow.flight as flight

from ercot_fast import __version__
from ercot_fast.config import DEFAULT_SQL_MAX_RESULT_MB, DEFAULT_SQL_MEMORY_MB, DEFAULT_SQL_TIMEOUT
from ercot_fast.errors import NotFoundError, SqlError, UnimplementedError
from ercot_fast.flight import sql_messages as m
from ercot_fast.sql import tables
from ercot_fast.sql.tables import CATALOG, SCHEMA

SERVER_NAME = "ercot_fast"
ACTIONS = (
    ("CreatePreparedStatement", "Flight SQL: prepare a SELECT (ActionCreatePreparedStatementRequest)"),
    ("ClosePreparedStatement", "Flight SQL: release a prepared statement (ActionClosePreparedStatementRequest)"),
)
#: the other Flight SQL actions (transactions, cancelling, Substrait): UNIMPLEMENTED
OTHER_ACTIONS = ("BeginTransaction", "EndTransaction", "BeginSavepoint", "EndSavepoint", "CancelQuery",
                 "CreatePreparedSubstraitPlan")
MAX_PREPARED = 10_000  # open prepared statements kept; the oldest is closed past this
_METADATA = ("CommandGetSqlInfo", "CommandGetCatalogs", "CommandGetDbSchemas", "CommandGetTables", "CommandGetTableTypes")
_UPDATES = ("CommandStatementUpdate", "CommandPreparedStatementUpdate", "CommandStatementIngest")

# the result schemas FlightSql.proto documents
_INFO_VALUE = pa.dense_union([
    pa.field("string_value", pa.utf8()),
    pa.field("bool_value", pa.bool_()),
    pa.field("bigint_value", pa.int64()),
    pa.field("int32_bitmask", pa.int32()),
    pa.field("string_list", pa.list_(pa.utf8())),
    pa.field("int32_to_int32_list_map", pa.map_(pa.int32(), pa.list_(pa.int32()))),
])
SQL_INFO_SCHEMA = pa.schema([pa.field("info_name", pa.uint32(), nullable=False), pa.field("value", _INFO_VALUE, nullable=False)])
CATALOGS_SCHEMA = pa.schema([pa.field("catalog_name", pa.utf8(), nullable=False)])
DB_SCHEMAS_SCHEMA = pa.schema([pa.field("catalog_name", pa.utf8()), pa.field("db_schema_name", pa.utf8(), nullable=False)])
TABLES_SCHEMA = pa.schema([
    pa.field("catalog_name", pa.utf8()),
    pa.field("db_schema_name", pa.utf8()),
    pa.field("table_name", pa.utf8(), nullable=False),
    pa.field("table_type", pa.utf8(), nullable=False),
])
TABLES_WITH_SCHEMA = TABLES_SCHEMA.append(pa.field("table_schema", pa.binary(), nullable=False))
TABLE_TYPES_SCHEMA = pa.schema([pa.field("table_type", pa.utf8(), nullable=False)])
# dense union child per kind of value: string, bool, bigint, int32
_STRING, _BOOL, _BIGINT, _INT32 = range(4)


def sql_info(time_limit_s):
    """SqlInfo id -> (union child, value): what the service says of itself."""
    return {
        m.FLIGHT_SQL_SERVER_NAME: (_STRING, SERVER_NAME),
        m.FLIGHT_SQL_SERVER_VERSION: (_STRING, __version__),
        m.FLIGHT_SQL_SERVER_ARROW_VERSION: (_STRING, pa.__version__),
        m.FLIGHT_SQL_SERVER_READ_ONLY: (_BOOL, True),
        m.FLIGHT_SQL_SERVER_SQL: (_BOOL, True),
        m.FLIGHT_SQL_SERVER_SUBSTRAIT: (_BOOL, False),
        m.FLIGHT_SQL_SERVER_TRANSACTION: (_INT32, m.SQL_SUPPORTED_TRANSACTION_NONE),
        m.FLIGHT_SQL_SERVER_CANCEL: (_BOOL, False),
        m.FLIGHT_SQL_SERVER_BULK_INGESTION: (_BOOL, False),
        m.FLIGHT_SQL_SERVER_STATEMENT_TIMEOUT: (_INT32, int(time_limit_s * 1000)),
        m.SQL_DDL_CATALOG: (_BOOL, False),
        m.SQL_DDL_SCHEMA: (_BOOL, False),
        m.SQL_DDL_TABLE: (_BOOL, False),
        m.SQL_IDENTIFIER_CASE: (_INT32, m.SQL_CASE_SENSITIVITY_CASE_INSENSITIVE),
        m.SQL_IDENTIFIER_QUOTE_CHAR: (_STRING, '"'),
        m.SQL_QUOTED_IDENTIFIER_CASE: (_INT32, m.SQL_CASE_SENSITIVITY_CASE_INSENSITIVE),
        m.SQL_ALL_TABLES_ARE_SELECTABLE: (_BOOL, True),
        m.SQL_NULL_ORDERING: (_INT32, m.SQL_NULLS_SORTED_AT_END),
        m.SQL_SEARCH_STRING_ESCAPE: (_STRING, "\\"),
        m.SQL_SUPPORTS_COLUMN_ALIASING: (_BOOL, True),
        m.SQL_NULL_PLUS_NULL_IS_NULL: (_BOOL, True),
    }


class FlightSql:
    """The Flight SQL side of the Flight server, over whichever store it is
    handed (the server's current one); the engine over a store is built at
    its first query and dropped with ``release``."""

    def __init__(self, time_limit_s=DEFAULT_SQL_TIMEOUT, max_result_mb=DEFAULT_SQL_MAX_RESULT_MB, memory_mb=DEFAULT_SQL_MEMORY_MB):
        self._limits = (time_limit_s, max_result_mb << 20, memory_mb)
        self._info = sql_info(time_limit_s)
        self._lock = threading.Lock()
        self._engine = None
        self._prepared = collections.OrderedDict()  # handle -> [sql, parameter values or None]

    @staticmethod
    def handles(raw):
        """The Flight SQL message name of a command or ticket, or None (a JSON ticket)."""
        return m.command_name(raw)

    def engine(self, store):
        # PERF: DuckDB is imported at the first query (250 ms), in the Flight
        # child only, not at every start of the service nor in the HTTP workers
        from ercot_fast.sql.engine import SqlEngine

        with self._lock:
            if self._engine is None or self._engine.store is not store:
                time_limit_s, max_result_bytes, memory_mb = self._limits
                self._engine = SqlEngine(store, time_limit_s, max_result_bytes, memory_mb)
            return self._engine

    def release(self):
        """Let go of the engine (and the store it holds): a new store is served."""
        with self._lock:
            self._engine = None

    # --- GetFlightInfo, GetSchema, DoGet ------------------------------------------------------

    def flight_info(self, store, descriptor):
        name = m.command_name(descriptor.command)
        schema = self.schema(store, name, descriptor.command)
        if name == "CommandStatementQuery":
            query = m.unpack(descriptor.command).query
            ticket = m.pack(m.TicketStatementQuery(statement_handle=query.encode()))
        else:  # a prepared statement or a metadata command: the command is its ticket
            ticket = descriptor.command
        return flight.FlightInfo(schema, descriptor, [flight.FlightEndpoint(ticket, [])], -1, -1)

    def schema(self, store, name, raw):
        """The schema DoGet will send for a command."""
        self._check(name)
        if name in _METADATA:
            return self._metadata(store, name, raw).schema
        sql, rows = self._statement(name, raw)
        return self.engine(store).schema(sql, rows[0] if rows else None)

    def do_get(self, store, ticket):
        """The Arrow table a Flight SQL ticket answers."""
        name = m.command_name(ticket)
        self._check(name, ticket=True)
        if name in _METADATA:
            return self._metadata(store, name, ticket)
        sql, params = self._statement(name, ticket)
        engine = self.engine(store)
        if params is None or len(params) <= 1:
            return engine.execute(sql, params[0] if params else None)
        # several bound parameter sets: one execution each, one result
        return pa.concat_tables([engine.execute(sql, row) for row in params])

    def _check(self, name, ticket=False):
        if name in _UPDATES:
            raise SqlError(f"{name} refused: the service is read-only", "send a SELECT (CommandStatementQuery)")
        known = _METADATA + ("CommandPreparedStatementQuery",) + (("TicketStatementQuery",) if ticket else ("CommandStatementQuery",))
        if name not in known:
            raise UnimplementedError(
                f"Flight SQL {name} is not implemented",
                "this service answers statement queries, prepared statements, GetSqlInfo, GetCatalogs, "
                "GetDbSchemas, GetTables and GetTableTypes",
            )

    def _statement(self, name, raw):
        """(SQL, parameter sets or None) of a statement, its ticket or a prepared statement."""
        message = m.unpack(raw)
        if name == "CommandStatementQuery":
            return message.query, None
        if name == "TicketStatementQuery":
            try:
                return message.statement_handle.decode("utf-8"), None
            except UnicodeDecodeError:
                raise SqlError("the statement ticket is not UTF-8 SQL", "use the ticket GetFlightInfo returned") from None
        return tuple(self._prepared_statement(message.prepared_statement_handle))

    def _prepared_statement(self, handle):
        with self._lock:
            statement = self._prepared.get(bytes(handle))
        if statement is None:
            raise NotFoundError("no such prepared statement (closed, or from before a restart); prepare it again")
        return statement

    # --- DoAction and DoPut ------------------------------------------------------------------

    def do_action(self, store, action):
        body = action.body.to_pybytes()
        if action.type == "CreatePreparedStatement":
            request = self._unpack(body, "ActionCreatePreparedStatementRequest")
            engine = self.engine(store)
            parameters = engine.parameters(request.query)
            dataset_schema = engine.schema(request.query)
            handle = uuid.uuid4().bytes
            with self._lock:
                self._prepared[handle] = [request.query, None]
                while len(self._prepared) > MAX_PREPARED:
                    self._prepared.popitem(last=False)
            result = m.ActionCreatePreparedStatementResult(
                prepared_statement_handle=handle,
                dataset_schema=dataset_schema.serialize().to_pybytes(),
                parameter_schema=_parameter_schema(parameters).serialize().to_pybytes() if parameters else b"",
                is_update=False,
            )
            return [flight.Result(m.pack(result))]
        if action.type == "ClosePreparedStatement":
            request = self._unpack(body, "ActionClosePreparedStatementRequest")
            with self._lock:
                self._prepared.pop(bytes(request.prepared_statement_handle), None)
            return []
        raise NotFoundError(f"unknown action {action.type!r}")

    def do_put(self, store, descriptor, reader, writer):
        """Parameters for a prepared statement: each row of the batches sent is one parameter set."""
        name = m.command_name(descriptor.command)
        if name in _UPDATES:
            self._check(name)
        if name != "CommandPreparedStatementQuery":
            raise UnimplementedError(f"DoPut of {name} is not implemented", "DoPut binds parameters of a prepared statement")
        handle = m.unpack(descriptor.command).prepared_statement_handle
        statement = self._prepared_statement(handle)
        rows = [tuple(row.values()) for row in reader.read_all().to_pylist()]
        expected = self.engine(store).parameters(statement[0])
        if any(len(row) != expected for row in rows):
            raise SqlError(f"the statement takes {expected} parameters; the batch sent has other columns",
                           "send one column per ? (or $n) in the query")
        with self._lock:
            statement[1] = rows or None
        # NOTE: PutResult metadata is the message itself, not an Any (as clients read it)
        writer.write(pa.py_buffer(m.DoPutPreparedStatementResult(prepared_statement_handle=handle).SerializeToString()))

    @staticmethod
    def _unpack(body, name):
        if m.command_name(body) != name:
            raise SqlError(f"the action body is not a {name}", "send the Flight SQL message the action names")
        return m.unpack(body)

    # --- metadata ----------------------------------------------------------------------------

    def _metadata(self, store, name, raw):
        command = m.unpack(raw)
        if name == "CommandGetSqlInfo":
            return self._sql_info(command.info)
        if name == "CommandGetCatalogs":
            return pa.table([pa.array([CATALOG])], schema=CATALOGS_SCHEMA)
        if name == "CommandGetTableTypes":
            return pa.table([pa.array(["TABLE", "VIEW"])], schema=TABLE_TYPES_SCHEMA)
        catalog_ok = not command.HasField("catalog") or command.catalog in (CATALOG, "")
        schemas = [SCHEMA] if catalog_ok and _matches(command, "db_schema_filter_pattern", SCHEMA) else []
        if name == "CommandGetDbSchemas":
            return pa.table([pa.array([CATALOG] * len(schemas), pa.utf8()), pa.array(schemas, pa.utf8())], schema=DB_SCHEMAS_SCHEMA)
        listed = [t for t in tables.catalogue() if schemas and _matches(command, "table_name_filter_pattern", t.name)
                  and (not command.table_types or t.kind in command.table_types)]
        listed.sort(key=lambda t: t.name)  # FlightSql.proto's order: catalog, schema, name
        columns = [pa.array([CATALOG] * len(listed), pa.utf8()), pa.array([SCHEMA] * len(listed), pa.utf8()),
                   pa.array([t.name for t in listed], pa.utf8()), pa.array([t.kind for t in listed], pa.utf8())]
        if not command.include_schema:
            return pa.table(columns, schema=TABLES_SCHEMA)
        engine = self.engine(store)
        schemas = [engine.schema_of(t.name).serialize().to_pybytes() for t in listed]
        return pa.table([*columns, pa.array(schemas, pa.binary())], schema=TABLES_WITH_SCHEMA)

    def _sql_info(self, wanted):
        ids = [i for i in (wanted or self._info) if i in self._info]
        kinds = [self._info[i][0] for i in ids]
        values = [self._info[i][1] for i in ids]
        children = [
            pa.array([v for k, v in zip(kinds, values) if k == _STRING], pa.utf8()),
            pa.array([v for k, v in zip(kinds, values) if k == _BOOL], pa.bool_()),
            pa.array([], pa.int64()),
            pa.array([v for k, v in zip(kinds, values) if k == _INT32], pa.int32()),
            pa.array([], pa.list_(pa.utf8())),
            pa.array([], pa.map_(pa.int32(), pa.list_(pa.int32()))),
        ]
        offsets, seen = [], collections.Counter()
        for kind in kinds:
            offsets.append(seen[kind])
            seen[kind] += 1
        union = pa.UnionArray.from_dense(pa.array(kinds, pa.int8()), pa.array(offsets, pa.int32()), children,
                                         [f.name for f in _INFO_VALUE], list(range(6)))
        return pa.table([pa.array(ids, pa.uint32()), union], schema=SQL_INFO_SCHEMA)


def _parameter_schema(count):
    """The parameters of a statement: their types are known once bound (null until then)."""
    return pa.schema([pa.field(str(i + 1), pa.null()) for i in range(count)])


def _matches(command, field, name):
    """True when ``command`` has no ``field`` filter or its SQL LIKE pattern matches ``name``."""
    return not command.HasField(field) or re.fullmatch(_like_regex(getattr(command, field)), name, re.S) is not None


def _like_regex(pattern):
    """A regular expression of SQL LIKE: % any run, _ any one character, \\ escapes."""
    parts, i = [], 0
    while i < len(pattern):
        c = pattern[i]
        if c == "\\" and i + 1 < len(pattern):
            parts.append(re.escape(pattern[i + 1]))
            i += 2
            continue
        parts.append(".*" if c == "%" else "." if c == "_" else re.escape(c))
        i += 1
    return "".join(parts)
