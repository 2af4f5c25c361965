"""Read-only SQL over one loaded store, with DuckDB (chosen over DataFusion by
``bench/bench_sql.py``: see bench/README.md).

The store's arrays are registered with DuckDB as Arrow tables (no copy); the
long views UNPIVOT them. The database is locked down before any query runs:
no file system or network access, no extensions, its settings frozen. Every
query must be one SELECT; it runs on a cursor of its own, interrupted at the
time limit, and its result is refused past the size limit. Errors are
``errors.SqlError`` with DuckDB's message and what to change, never a traceback.
"""
import threading

import duckdb
import pyarrow as pa

from ercot_fast.config import DEFAULT_SQL_MAX_RESULT_MB, DEFAULT_SQL_MEMORY_MB, DEFAULT_SQL_TIMEOUT
from ercot_fast.errors import SqlError, SqlLimitError, SqlTimeoutError
from ercot_fast.sql import tables
from ercot_fast.sql.tables import CATALOG, SCHEMA

ALLOWED = (duckdb.StatementType.SELECT,)
_ARROW = "_arrow_"  # prefix of the registered Arrow tables the catalog's views read
_BATCH_ROWS = 65_536


class SqlEngine:
    """DuckDB over ``store``'s tables; thread-safe (a cursor per query)."""

    def __init__(self, store, time_limit_s=DEFAULT_SQL_TIMEOUT, max_result_bytes=DEFAULT_SQL_MAX_RESULT_MB << 20,
                 memory_mb=DEFAULT_SQL_MEMORY_MB, threads=2):
        self.store = store
        self.time_limit_s = time_limit_s
        self.max_result_bytes = max_result_bytes
        self._db = duckdb.connect(config={"threads": threads, "memory_limit": f"{memory_mb}MB"})
        self._db.execute(f"ATTACH ':memory:' AS {CATALOG}")  # the catalog Flight SQL clients see
        self._db.execute(f"USE {CATALOG}")
        # NOTE: an Arrow table registered with DuckDB is seen by the connection
        # that registered it only: every cursor registers them again (cheap:
        # no data is read); the long views, in the database, resolve to them
        self._wide = {_ARROW + e.name: tables.wide_table(store.datasets[e.dataset]) for e in tables.catalogue() if e.kind == "TABLE"}
        for name, table in self._wide.items():
            self._db.register(name, table)
        for entry in tables.catalogue():
            if entry.kind == "TABLE":
                self._db.execute(f'CREATE VIEW "{entry.name}" AS SELECT * FROM "{_ARROW}{entry.name}"')
            else:
                self._db.execute(_long_view(entry, self._wide[_ARROW + entry.name + tables.WIDE_SUFFIX].schema))
        self._tables = {e.name: self._described(e.name) for e in tables.catalogue()}
        for setting in ("SET TimeZone = 'UTC'", "SET enable_external_access = false", "SET autoinstall_known_extensions = false",
                        "SET autoload_known_extensions = false", "SET lock_configuration = true"):
            self._db.execute(setting)

    def _described(self, name):
        """A table's Arrow schema, each field with its SQL type and place (Flight SQL's column metadata)."""
        schema = self._db.sql(f'SELECT * FROM "{name}" LIMIT 0').to_arrow_table().schema
        types = dict(self._db.execute(
            "SELECT column_name, data_type FROM information_schema.columns WHERE table_catalog = ? AND table_name = ?",
            [CATALOG, name]).fetchall())
        place = {"CATALOG_NAME": CATALOG, "DB_SCHEMA_NAME": SCHEMA, "TABLE_NAME": name, "IS_READ_ONLY": "1",
                 "IS_SEARCHABLE": "1"}
        return pa.schema([
            field.with_metadata({f"ARROW:FLIGHT:SQL:{k}": v for k, v in {**place, "TYPE_NAME": types[field.name]}.items()})
            for field in schema
        ])

    def _register(self, connection):
        for name, table in self._wide.items():
            connection.register(name, table)
        connection.execute(f"USE {CATALOG}")

    def schema_of(self, name):
        """The Arrow schema of a table or view (as queries return it)."""
        return self._tables[name]

    @staticmethod
    def parameters(sql):
        """How many parameters (``?``, ``$1``) the one SELECT in ``sql`` takes; SqlError if it is not one SELECT."""
        return len(_statement(sql).named_parameters)

    def schema(self, sql, params=None):
        """The schema ``execute(sql, params)`` would answer, without running the query."""
        count = self.parameters(sql)
        values = list(params) if params is not None else [None] * count
        return self._run(f"SELECT * FROM ({sql}\n) LIMIT 0", values).schema

    def execute(self, sql, params=None):
        """The answer of one SELECT as an Arrow table (``params``: its parameter values, in order)."""
        count = self.parameters(sql)
        values = list(params or ())
        if len(values) != count:
            raise SqlError(f"the query takes {count} parameters, {len(values)} were given",
                           "bind one value per ? (or $n) in the query")
        return self._run(sql, values)

    def _run(self, sql, values):
        cursor = self._db.cursor()
        self._register(cursor)
        timer = threading.Timer(self.time_limit_s, cursor.interrupt)
        timer.start()
        try:
            reader = cursor.sql(sql, params=values or None).to_arrow_reader(_BATCH_ROWS)
            batches, size = [], 0
            for batch in reader:
                size += batch.nbytes
                if size > self.max_result_bytes:
                    raise SqlLimitError(f"the result is over the limit of {self.max_result_bytes >> 20} MB",
                                        "select fewer columns or rows, or aggregate in the query")
                batches.append(batch)
            return pa.Table.from_batches(batches, schema=reader.schema)
        except duckdb.InterruptException:
            raise SqlTimeoutError(f"the query ran longer than the limit of {self.time_limit_s:g} s",
                                "narrow it (a shorter range, fewer settlement points) or aggregate more") from None
        except duckdb.Error as exc:
            raise SqlError(_first_line(exc), "fix the query; tables: " + ", ".join(self._tables)) from None
        finally:
            timer.cancel()
            cursor.close()


def _statement(sql):
    if not isinstance(sql, str) or not sql.strip():
        raise SqlError("the query is empty", "send one SELECT statement")
    try:
        statements = duckdb.extract_statements(sql)
    except duckdb.Error as exc:
        raise SqlError(_first_line(exc), "fix the SQL syntax") from None
    if len(statements) != 1:
        raise SqlError(f"{len(statements)} statements sent", "send exactly one SELECT statement")
    statement = statements[0]
    if statement.type not in ALLOWED:
        kind = statement.type.name
        raise SqlError(f"{kind} statements are refused: the service is read-only", "send a SELECT statement")
    return statement


def _first_line(exc):
    return str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__


def _long_view(entry, wide_schema):
    """CREATE VIEW of a data set's long form: an UNPIVOT of its wide table."""
    times = [n for n in tables.TIME_COLUMNS if n in wide_schema.names]
    listed = ", ".join(f'"{n}"' for n in times)
    series = [n for n in wide_schema.names if n not in times]
    if not series:  # no price columns: an empty view of the same shape
        return (f'CREATE VIEW "{entry.name}" AS SELECT {listed}, NULL::VARCHAR AS "{entry.series_column}", '
                f'NULL::DOUBLE AS price FROM "{_ARROW}{entry.name}{tables.WIDE_SUFFIX}" WHERE false')
    columns = ", ".join(f'"{n}"' for n in series)
    return (f'CREATE VIEW "{entry.name}" AS SELECT {listed}, "{entry.series_column}", price FROM '
            f'(UNPIVOT "{_ARROW}{entry.name}{tables.WIDE_SUFFIX}" ON {columns} INTO NAME "{entry.series_column}" VALUE price)')
