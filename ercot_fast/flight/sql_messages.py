"""The Arrow Flight SQL protocol messages the service reads and writes, built
here with ``descriptor_pb2`` from the definitions of Apache Arrow's
``format/FlightSql.proto`` (package ``arrow.flight.protocol.sql``, proto3;
names and field numbers as there), so that no client package's copy is needed.

Flight SQL wraps every command, ticket and action body in a
``google.protobuf.Any``: ``pack``/``unpack`` here, and ``command_name`` says
which message a Flight SQL payload holds (None for anything else, such as the
service's JSON tickets).
"""
from google.protobuf import any_pb2, descriptor_pb2, descriptor_pool, message_factory

PACKAGE = "arrow.flight.protocol.sql"
TYPE_URL_PREFIX = f"type.googleapis.com/{PACKAGE}."

_F = descriptor_pb2.FieldDescriptorProto
_TYPES = {"string": _F.TYPE_STRING, "bytes": _F.TYPE_BYTES, "bool": _F.TYPE_BOOL, "uint32": _F.TYPE_UINT32,
          "int32": _F.TYPE_INT32, "int64": _F.TYPE_INT64}
# message -> fields (label, type, name, number); label: "" plain, "optional", "repeated"
_MESSAGES = {
    "CommandGetSqlInfo": [("repeated", "uint32", "info", 1)],
    "CommandGetXdbcTypeInfo": [("optional", "int32", "data_type", 1)],
    "CommandGetCatalogs": [],
    "CommandGetDbSchemas": [("optional", "string", "catalog", 1), ("optional", "string", "db_schema_filter_pattern", 2)],
    "CommandGetTables": [
        ("optional", "string", "catalog", 1),
        ("optional", "string", "db_schema_filter_pattern", 2),
        ("optional", "string", "table_name_filter_pattern", 3),
        ("repeated", "string", "table_types", 4),
        ("", "bool", "include_schema", 5),
    ],
    "CommandGetTableTypes": [],
    "CommandGetPrimaryKeys": [("optional", "string", "catalog", 1), ("optional", "string", "db_schema", 2), ("", "string", "table", 3)],
    "CommandGetExportedKeys": [("optional", "string", "catalog", 1), ("optional", "string", "db_schema", 2), ("", "string", "table", 3)],
    "CommandGetImportedKeys": [("optional", "string", "catalog", 1), ("optional", "string", "db_schema", 2), ("", "string", "table", 3)],
    "CommandGetCrossReference": [
        ("optional", "string", "pk_catalog", 1), ("optional", "string", "pk_db_schema", 2), ("", "string", "pk_table", 3),
        ("optional", "string", "fk_catalog", 4), ("optional", "string", "fk_db_schema", 5), ("", "string", "fk_table", 6),
    ],
    "ActionCreatePreparedStatementRequest": [("", "string", "query", 1), ("optional", "bytes", "transaction_id", 2)],
    "ActionCreatePreparedStatementResult": [
        ("", "bytes", "prepared_statement_handle", 1),
        ("", "bytes", "dataset_schema", 2),
        ("", "bytes", "parameter_schema", 3),
        ("optional", "bool", "is_update", 4),
    ],
    "ActionClosePreparedStatementRequest": [("", "bytes", "prepared_statement_handle", 1)],
    "CommandStatementQuery": [("", "string", "query", 1), ("optional", "bytes", "transaction_id", 2)],
    "TicketStatementQuery": [("", "bytes", "statement_handle", 1)],
    "CommandPreparedStatementQuery": [("", "bytes", "prepared_statement_handle", 1)],
    "CommandStatementUpdate": [("", "string", "query", 1), ("optional", "bytes", "transaction_id", 2)],
    "CommandPreparedStatementUpdate": [("", "bytes", "prepared_statement_handle", 1)],
    "DoPutUpdateResult": [("", "int64", "record_count", 1)],
    "DoPutPreparedStatementResult": [("optional", "bytes", "prepared_statement_handle", 1)],
}
# SqlInfo ids (FlightSql.proto's enum SqlInfo)
FLIGHT_SQL_SERVER_NAME = 0
FLIGHT_SQL_SERVER_VERSION = 1
FLIGHT_SQL_SERVER_ARROW_VERSION = 2
FLIGHT_SQL_SERVER_READ_ONLY = 3
FLIGHT_SQL_SERVER_SQL = 4
FLIGHT_SQL_SERVER_SUBSTRAIT = 5
FLIGHT_SQL_SERVER_TRANSACTION = 8
FLIGHT_SQL_SERVER_CANCEL = 9
FLIGHT_SQL_SERVER_BULK_INGESTION = 10
FLIGHT_SQL_SERVER_STATEMENT_TIMEOUT = 100
SQL_DDL_CATALOG = 500
SQL_DDL_SCHEMA = 501
SQL_DDL_TABLE = 502
SQL_IDENTIFIER_CASE = 503
SQL_IDENTIFIER_QUOTE_CHAR = 504
SQL_QUOTED_IDENTIFIER_CASE = 505
SQL_ALL_TABLES_ARE_SELECTABLE = 506
SQL_NULL_ORDERING = 507
SQL_SEARCH_STRING_ESCAPE = 513
SQL_SUPPORTS_COLUMN_ALIASING = 515
SQL_NULL_PLUS_NULL_IS_NULL = 516
# enum values
SQL_SUPPORTED_TRANSACTION_NONE = 0
SQL_CASE_SENSITIVITY_CASE_INSENSITIVE = 1
SQL_NULLS_SORTED_AT_END = 3


def _build():
    file = descriptor_pb2.FileDescriptorProto(name="ercot_fast/flight_sql.proto", package=PACKAGE, syntax="proto3")
    for name, fields in _MESSAGES.items():
        message = file.message_type.add(name=name)
        for label, kind, field_name, number in fields:
            field = message.field.add(name=field_name, number=number, type=_TYPES[kind],
                                      label=_F.LABEL_REPEATED if label == "repeated" else _F.LABEL_OPTIONAL)
            if label == "optional":  # proto3 `optional`: presence through a synthetic oneof
                field.proto3_optional = True
                field.oneof_index = len(message.oneof_decl)
                message.oneof_decl.add(name=f"_{field_name}")
    pool = descriptor_pool.DescriptorPool()
    pool.Add(file)
    return {name: message_factory.GetMessageClass(pool.FindMessageTypeByName(f"{PACKAGE}.{name}")) for name in _MESSAGES}


MESSAGES = _build()
globals().update(MESSAGES)  # CommandStatementQuery, ... as module attributes


def pack(message):
    """``message`` in a google.protobuf.Any, serialized (a command, ticket or action body)."""
    wrapped = any_pb2.Any()
    wrapped.Pack(message)
    return wrapped.SerializeToString()


def command_name(raw):
    """The Flight SQL message name in ``raw`` (serialized Any bytes), or None
    when ``raw`` is not a Flight SQL payload."""
    raw = bytes(raw)
    if not raw.startswith(b"\x0a"):  # an Any starts with its type_url (field 1, length-delimited)
        return None
    try:
        wrapped = any_pb2.Any.FromString(raw)
    except Exception:  # noqa: BLE001 (protobuf's DecodeError and friends): not a Flight SQL payload
        return None
    if not wrapped.type_url.startswith(TYPE_URL_PREFIX):
        return None
    return wrapped.type_url[len(TYPE_URL_PREFIX):]


def unpack(raw):
    """The message in ``raw`` (serialized Any bytes) of a known name."""
    wrapped = any_pb2.Any.FromString(bytes(raw))
    message = MESSAGES[wrapped.type_url[len(TYPE_URL_PREFIX):]]()
    wrapped.Unpack(message)
    return message
