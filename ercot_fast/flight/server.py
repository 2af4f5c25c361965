"""The Arrow Flight server: the store and the query layer of the HTTP API,
served as Arrow record batches to any ``pyarrow.flight`` client.

Cross-cutting work (API keys, the rate limit, metrics, logs) attaches at one
seam (``flight.seam``): a middleware of ``PriceFlightServer`` that sees every
call, and ``admit`` in every method that answers one.

``serve`` is the supervised child's target (``serve.supervisor``): the
server runs in one child forked from the gunicorn master after the store is
loaded, and gRPC starts only there.
"""
import functools
import gc
import json
import logging
import os
import traceback

import pyarrow as pa
import pyarrow.flight as flight

from ercot_fast import health, logs, timeutil
from ercot_fast.access.keys import ApiKeys
from ercot_fast.config import DEFAULT_MAX_RANGE_DAYS
from ercot_fast.errors import NotFoundError, QueryError, SqlError, SqlTimeoutError, UnimplementedError
from ercot_fast.flight import seam, sql, tickets
from ercot_fast.flight.tickets import DESCRIPTORS, TICKET_HINT
from ercot_fast.render import arrow

log = logging.getLogger(__name__)

ACTIONS = (
    ("healthcheck", "service status as JSON, like GET /api/health; UNAVAILABLE when no data is loaded"),
    ("available_hubs", "JSON array of the settlement points in the data, like GET /api/available_hubs"),
    ("describe", "JSON: loaded data sets (rows, series, first and last instant), limits, server pid"),
    ("reload", "load the data directory again, as SIGHUP does (needs API keys configured, and one sent); "
               "answers at once, the reload runs in the background"),
)
RELOAD_REQUESTS = ("ercot_fast_reload_requests", (("protocol", "flight"),))


FOLLOW_SECONDS = 1.0  # an idle Flight child looks for a new store this often


def location_of(addr, tls=False):
    """'HOST:PORT' -> 'grpc://HOST:PORT', or 'grpc+tls://HOST:PORT'."""
    return f"grpc+tls://{addr}" if tls else f"grpc://{addr}"


def tls_certificates(cert_path, key_path):
    """``tls_certificates`` of a FlightServerBase: the PEM files' bytes."""
    with open(cert_path, "rb") as cert, open(key_path, "rb") as key:
        return [flight.CertKeyPair(cert.read(), key.read())]


def serve(child, follower, addr, max_range_days=DEFAULT_MAX_RANGE_DAYS, stale_after=None, sql_limits=(),
          access_log_format=None, limit=None, counters=None, tls=None, request_reload=None, advertise=()):
    """The Flight child's target: serve the published store (``follower``)
    on ``addr`` until stopped; ``sql_limits``: Flight SQL's (time limit s,
    result MB, memory MB); ``access_log_format``: text or json, None: no
    access log; ``limit``: the rate limit (``access.limits``) or None;
    ``counters``: the child's metrics (``metrics.counters``), or None;
    ``tls``: (certificate path, key path), None: no TLS; ``request_reload(who)``:
    asks the master for a reload (the action ``reload``); ``advertise``: the
    Flight locations of the replicas a pull is spread over (``--flight-advertise``)."""
    if counters is not None:
        counters.start()
    api_keys = _api_keys_of(follower)
    middleware = {seam.Seam.NAME: seam.Seam(api_keys, limit, access_log_format, counters)}
    location = location_of(addr, tls is not None)
    server = PriceFlightServer(follower.store, location, max_range_days, follower=follower, stale_after=stale_after,
                               flight_sql=sql.FlightSql(*sql_limits), middleware=middleware, counters=counters,
                               tls_certificates=tls_certificates(*tls) if tls else None,
                               reload=(request_reload, api_keys) if request_reload else None, advertise=advertise)
    log.info("Arrow Flight serving on %s (pid %d, port %d)", location, os.getpid(), server.port)
    child.ready(str(server.port))
    while child.wait_for_stop(timeout=FOLLOW_SECONDS) is None:
        server.follow()  # an idle server lets go of a replaced store too
    server.shutdown()  # lets streams in flight finish; the master bounds the wait
    # NOTE: the child ends with os._exit (serve.supervisor): no atexit, so its last lines and counts are written here
    logs.flush_lines()
    if counters is not None:
        counters.write()


def _api_keys_of(follower):
    """``current()`` -> the ApiKeys the master published last."""
    made = [None, ApiKeys()]

    def current():
        if follower.changed():
            follower.refresh()
        digests = follower.api_keys
        if digests is not made[0]:
            made[:] = [digests, ApiKeys(digests)]
        return made[1]

    return current


class _ClientError(Exception):
    """An error in the client's request, whose message says what to change.

    pyarrow maps a Python ValueError to INVALID_ARGUMENT and a KeyError to
    NOT_FOUND, and appends ``Detail: Python exception: <traceback>`` to the
    message of any exception that is not a FlightError, formatted by
    ``traceback.format_exception`` when the status is sent. For these
    errors (and only these) that text is replaced by ``CLIENT_ERROR_DETAIL``:
    the code stays, no traceback, file path or type name leaves the server."""


class _InvalidArgument(_ClientError, ValueError):
    pass


class _NotFound(_ClientError, NotFoundError):
    pass


class _Unimplemented(_ClientError, NotImplementedError):
    pass


CLIENT_ERROR_DETAIL = "the request is at fault, not the server"


def _client_errors_without_traceback(format_exception):
    @functools.wraps(format_exception)
    def formatted(exc, *args, **kwargs):
        value = args[0] if args else exc
        if isinstance(value, _ClientError):
            return [CLIENT_ERROR_DETAIL]
        return format_exception(exc, *args, **kwargs)

    return formatted


# NOTE: narrow by design: every exception but _ClientError formats as before.
traceback.format_exception = _client_errors_without_traceback(traceback.format_exception)


def _answers_errors(method):
    """Bad input -> INVALID_ARGUMENT (or NOT_FOUND) with what to change; a
    fault -> INTERNAL, logged here and not leaked."""

    @functools.wraps(method)
    def wrapper(self, context, *args):
        try:
            self.follow()
            seam.admit(context)
            return method(self, context, *args)
        except QueryError as exc:
            log.info("%s rejected: %s", method.__name__, exc.message)
            raise _InvalidArgument(tickets.message(exc)) from None
        except NotFoundError as exc:
            raise _NotFound(exc.message) from None
        except UnimplementedError as exc:
            raise _Unimplemented(f"{exc.message}; {exc.details}") from None
        except SqlTimeoutError as exc:
            log.info("%s stopped: %s", method.__name__, exc.message)
            raise flight.FlightTimedOutError(f"{exc.message}; {exc.details}") from None
        except SqlError as exc:
            log.info("%s rejected: %s", method.__name__, exc.message)
            raise _InvalidArgument(f"{exc.message}; {exc.details}") from None
        except (flight.FlightError, _ClientError):
            raise
        except Exception:
            log.exception("internal error in %s", method.__name__)
            raise flight.FlightInternalError("internal server error; the fault is logged on the server") from None

    return wrapper


STREAMED_ROWS, STREAMED_BYTES = ("ercot_fast_flight_rows", (("method", "DoGet"),)), ("ercot_fast_flight_bytes", (("method", "DoGet"),))


def result_stream(selection, schema, counters=None):
    """The FlightDataStream of do_get: schema first, then bounded batches
    (IPC-compressed when the ticket asked), their rows and bytes counted in
    ``counters`` as they are made. PERF: a RecordBatchStream over a reader
    of the parts' batches: C++ writes each batch without the GIL, and takes
    it only to ask the generator for the next (one hub's part at a time is
    built, so one hub column at a time is alive)."""

    def batches():
        for table, wire_bytes in arrow.result_parts(selection, schema):
            yield from _counted(table, wire_bytes, counters).to_batches()

    options = pa.ipc.IpcWriteOptions(compression=selection.compression) if selection.compression else None
    return flight.RecordBatchStream(pa.RecordBatchReader.from_batches(schema, batches()), options=options)


def _counted(table, wire_bytes, counters):
    if counters is not None:
        counters.add(STREAMED_ROWS, table.num_rows)
        counters.add(STREAMED_BYTES, wire_bytes)
    return table


def _is_flight_sql(descriptor):
    return descriptor.descriptor_type == flight.DescriptorType.CMD and sql.FlightSql.handles(descriptor.command) is not None


class _HandshakeInTheSeam(flight.ServerAuthHandler):
    """Accepts every Handshake: the seam checks its basic-auth header and
    answers it with the bearer token (no key configured: nothing to check)."""

    def authenticate(self, outgoing, incoming):
        pass

    def is_valid(self, token):
        return ""


class PriceFlightServer(flight.FlightServerBase):
    """Flight over an already loaded store (never reads files). Serving
    starts when constructed; ``shutdown()`` stops it.

    ``follower``: a ``store.shared.Follower``; every call first swaps to the
    store the master published last (a call in flight keeps its own).
    ``middleware``: the seam, ``{name: pyarrow.flight.ServerMiddlewareFactory}``.
    ``flight_sql``: the Flight SQL side (``flight.sql.FlightSql``, its limits).
    ``counters``: where the rows and bytes streamed are counted (``metrics.counters``).
    ``reload``: (``request_reload(who)``, ``api_keys()``), for the action
    ``reload`` (None: refused); ``advertise``: Flight locations, one endpoint
    (one part of the answer) each in every FlightInfo (empty: one endpoint, here).
    """

    def __init__(
        self, store, location, max_range_days=DEFAULT_MAX_RANGE_DAYS, middleware=None, follower=None, stale_after=None,
        flight_sql=None, counters=None, reload=None, advertise=(), **kwargs,
    ):
        super().__init__(location, middleware=middleware or {}, auth_handler=_HandshakeInTheSeam(), **kwargs)
        self._sql = flight_sql or sql.FlightSql()
        self._counters = counters  # metrics.counters.Counters of the rows and bytes streamed, or None
        self._store = store
        self._problems = follower.problems if follower else ()
        self._follower = follower
        self._generation = follower.generation if follower else None
        self._stale_after = stale_after
        self._max_range_days = max_range_days
        self._dataset_infos = {}  # descriptor name -> FlightInfo of the current store
        self._reload = reload
        self._advertise = tuple(flight.Location(uri) for uri in advertise)

    def follow(self):
        """Swap to the store the master published last, if it changed."""
        follower = self._follower
        if follower is None:
            return
        if follower.changed():
            follower.refresh()  # NOTE: the seam may have refreshed it first (for the API keys): compare generations
        if follower.generation != self._generation:
            self._generation, self._problems = follower.generation, follower.problems
            if follower.store is not self._store:
                self._store, self._dataset_infos = follower.store, {}
                self._sql.release()
                gc.collect()  # NOTE: the old FlightInfos and store: their mapping goes now

    def _selection(self, descriptor):
        """(Selection, ticket bytes) of a path or command descriptor."""
        if descriptor.descriptor_type == flight.DescriptorType.PATH:
            path = [p.decode("utf-8", "replace") if isinstance(p, bytes) else str(p) for p in descriptor.path]
            if len(path) != 1 or path[0] not in DESCRIPTORS:
                raise NotFoundError(f"no flight {'/'.join(path)!r}; use one of {', '.join(DESCRIPTORS)} or a command")
            ticket = tickets.dataset_ticket(path[0])
        elif descriptor.descriptor_type == flight.DescriptorType.CMD:
            ticket = descriptor.command
        else:
            raise QueryError("the descriptor is neither a path nor a command", TICKET_HINT)
        return tickets.parse_ticket(ticket, self._store, self._max_range_days), ticket

    def _flight_info(self, descriptor):
        selection, ticket = self._selection(descriptor)
        schema = arrow.result_schema(selection, self._store.synthetic)
        records, total_bytes = arrow.result_counts(selection, schema)
        if not self._advertise:
            endpoints = [flight.FlightEndpoint(ticket, [])]  # no location: redeem it here
        else:  # one part of the answer per replica: a client reads them side by side
            parts = tickets.part_tickets(ticket, len(self._advertise))
            endpoints = [flight.FlightEndpoint(part, [where]) for part, where in zip(parts, self._advertise)]
        return flight.FlightInfo(schema, descriptor, endpoints, records, total_bytes)

    def _dataset_info(self, name):
        info = self._dataset_infos.get(name)
        if info is None:
            info = self._dataset_infos[name] = self._flight_info(flight.FlightDescriptor.for_path(name))
        return info

    @_answers_errors
    def list_flights(self, context, criteria):
        """One flight per data set, then ``ercot_prices``; ``criteria`` is ignored."""
        return [self._dataset_info(name) for name in DESCRIPTORS]

    @_answers_errors
    def get_flight_info(self, context, descriptor):
        if _is_flight_sql(descriptor):
            return self._sql.flight_info(self._store, descriptor)
        if descriptor.descriptor_type == flight.DescriptorType.PATH and len(descriptor.path) == 1:
            name = descriptor.path[0].decode("utf-8", "replace")
            if name in DESCRIPTORS:
                return self._dataset_info(name)
        return self._flight_info(descriptor)

    @_answers_errors
    def get_schema(self, context, descriptor):
        if _is_flight_sql(descriptor):
            name = sql.FlightSql.handles(descriptor.command)
            return flight.SchemaResult(self._sql.schema(self._store, name, descriptor.command))
        selection, _ = self._selection(descriptor)
        return flight.SchemaResult(arrow.result_schema(selection, self._store.synthetic))

    @_answers_errors
    def do_get(self, context, ticket):
        if sql.FlightSql.handles(ticket.ticket):
            table = self._sql.do_get(self._store, ticket.ticket)
            return flight.RecordBatchStream(_counted(table, table.nbytes, self._counters))
        selection = tickets.parse_ticket(ticket.ticket, self._store, self._max_range_days)
        result = selection.result
        log.info(
            "do_get %s: %d instants x %d series from %s",
            selection.layout,
            len(result.timestamps),
            len(result.names),
            context.peer(),
        )
        return result_stream(selection, arrow.result_schema(selection, self._store.synthetic), self._counters)

    def list_actions(self, context):
        return list(ACTIONS) + list(sql.ACTIONS)

    @_answers_errors
    def do_put(self, context, descriptor, reader, writer):
        if _is_flight_sql(descriptor):
            return self._sql.do_put(self._store, descriptor, reader, writer)
        raise _Unimplemented("this service is read-only: do_put is not supported; use do_get")

    def do_exchange(self, context, descriptor, reader, writer):
        raise _Unimplemented("do_exchange is not supported; use do_get")

    @_answers_errors
    def do_action(self, context, action):
        if action.type in dict(sql.ACTIONS):
            return self._sql.do_action(self._store, action)
        if action.type in sql.OTHER_ACTIONS:
            raise UnimplementedError(f"Flight SQL {action.type} is not supported", "the service is read-only, without transactions")
        if action.type == "reload":
            return [flight.Result(json.dumps(self._request_reload(context)).encode())]
        handler = getattr(self, f"_action_{action.type}", None)
        if handler is None:
            names = ", ".join(name for name, _ in ACTIONS)
            raise NotFoundError(f"unknown action {action.type!r}; use one of {names} (see list_actions)")
        return [flight.Result(json.dumps(handler()).encode())]

    def _request_reload(self, context):
        request_reload, api_keys = self._reload or (None, None)
        if request_reload is None or not api_keys().enabled:
            raise flight.FlightUnauthorizedError(
                "reloads over Flight need API keys: configure them (--api-keys-file or API_KEYS) and send one, "
                "or reload with SIGHUP to the master or --reload-interval")
        request_reload(f"Flight ({context.peer()})")
        if self._counters is not None:
            self._counters.add(RELOAD_REQUESTS)
        return {"status": "reload requested", "details": "the data directory is loaded again in the background"}

    def _action_healthcheck(self):
        serving, body = health.check(self._store, self._problems, self._stale_after)
        if not serving:
            raise flight.FlightUnavailableError(body["details"])
        return body

    def _action_available_hubs(self):
        return list(self._store.settlement_points)

    def _action_describe(self):
        described = {}
        for name, dataset in self._store.datasets.items():
            described[name] = {
                "rows": len(dataset),
                "series": len(dataset.columns),
                "interval_minutes": dataset.interval_ms // timeutil.MS_PER_MINUTE,
                "first": timeutil.format_instant(dataset.timestamps[0]) if len(dataset) else None,
                "last": timeutil.format_instant(dataset.timestamps[-1]) if len(dataset) else None,
            }
        return {
            "service": health.SERVICE,
            "pid": os.getpid(),
            "synthetic": self._store.synthetic,
            "files_loaded": self._store.files_loaded,
            "datasets": described,
            "max_range_days": self._max_range_days,
            "max_batch_rows": arrow.MAX_BATCH_ROWS,
            "max_batch_bytes": arrow.MAX_BATCH_BYTES,
            "flight_locations": [where.uri.decode() for where in self._advertise],
        }
