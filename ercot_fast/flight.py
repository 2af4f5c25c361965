"""The Arrow Flight transport (API.md, "Arrow Flight"): the store and the query
layer of the HTTP API, served as Arrow record batches to any ``pyarrow.flight``
client.

Tickets are UTF-8 JSON objects of one of two forms:

- a query, with the HTTP parameters and their meanings (``price_type``,
  ``start_date``, ``end_date``, ``hubs`` as a list or a comma-separated string,
  ``resolution``, ``tz``; aliases accepted), checked by ``query.parse_query``
  with the configured maximum range;
- a whole data set, ``{"dataset": "real_time_15min"}``: every instant and, unless
  ``hubs`` names some, every series of ``day_ahead``, ``real_time`` (hourly),
  ``real_time_15min`` or ``ancillary_services``. ``ercot_prices``, the older
  service's descriptor, is the day-ahead data set. These are the tickets
  ``list_flights`` hands out; no range limit applies to them. The bare name
  (``b"ercot_prices"``) works as a ticket too.

Both take ``"layout": "long"`` (the default: ``datetime``, ``hub``, ``price``;
rows ordered by hub in the order asked, then by time, as ``DataFrame.melt``
orders them) or ``"wide"`` (``datetime``, then one float64 column per series).

Bound: every record batch holds at most ``MAX_BATCH_ROWS`` (65,536) rows and
at most ``MAX_BATCH_BYTES`` (8 MiB) of Arrow data, so a pull of any size is a
stream of small messages. No copies: wide batches are slices of the store's
arrays; a long batch is a slice of the store's timestamps, a slice of one price
column and a slice of one hub column built once per hub from two buffers (the
only memory a pull allocates: about 1 MB per hub, one or two hubs at a time).

Process model: ``FlightProcess`` runs the server in one child forked from the
gunicorn master after the store is loaded (the child shares the store's pages
copy-on-write); gRPC starts only in that child, never in a process that forks.
"""
import dataclasses
import datetime as dt
import errno
import functools
import json
import logging
import os
import select
import signal
import sys
import time

import numpy as np
import pyarrow as pa
import pyarrow.flight as flight

from ercot_fast import query, timeutil
from ercot_fast.errors import QueryError, RangeTooLargeError
from ercot_fast.store import (
    ANCILLARY_SERVICES,
    DATASETS,
    DAY_AHEAD,
    REAL_TIME,
    REAL_TIME_15MIN,
    SYNTHETIC_KEY,
    settlement_point_order,
)

log = logging.getLogger(__name__)

MAX_BATCH_ROWS = 65_536
MAX_BATCH_BYTES = 8 << 20
LONG = "long"
WIDE = "wide"
LAYOUTS = (LONG, WIDE)
COMPATIBILITY = "ercot_prices"  # the older service's descriptor: the day-ahead data set
DESCRIPTORS = DATASETS + (COMPATIBILITY,)
QUERY_KEYS = ("start_date", "end_date", "hubs", "price_type", "resolution", "tz", "layout")
DATASET_KEYS = ("dataset", "hubs", "layout")
# data set -> (price_type, resolution) of the query that reads all of it
_DATASET_QUERY = {
    DAY_AHEAD: ("day_ahead", query.HOURLY),
    REAL_TIME: ("real_time", query.HOURLY),
    REAL_TIME_15MIN: ("real_time", query.FIFTEEN_MINUTES),
    ANCILLARY_SERVICES: ("ancillary_services", query.HOURLY),
}
_TICKET_HINT = (
    'send a JSON object: {"start_date": "2023-01-01", "end_date": "2023-01-31", '
    '"hubs": ["HB_NORTH"], "price_type": "day_ahead"} or {"dataset": "real_time_15min"} '
    "(list_flights gives a ticket per data set)"
)
ACTIONS = (
    ("healthcheck", "service status as JSON, like GET /api/health; UNAVAILABLE when no data is loaded"),
    ("available_hubs", "JSON array of the settlement points in the data, like GET /api/available_hubs"),
    ("describe", "JSON: loaded data sets (rows, series, first and last instant), limits, server pid"),
)
HEALTHY_SERVICE = "ercot_price_service"
_EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.timezone.utc)


@dataclasses.dataclass(frozen=True)
class Selection:
    """What one ticket selects: the query result and how to lay it out."""

    result: query.PriceResult
    layout: str = LONG
    tz: str = query.UTC


class _NotFound(KeyError):
    """A descriptor or action that does not exist (gRPC NOT_FOUND)."""

    def __str__(self):  # KeyError would quote the message
        return self.args[0]


# --- tickets -----------------------------------------------------------------


def parse_ticket(raw, store, max_range_days=query.DEFAULT_MAX_RANGE_DAYS):
    """Check a ticket (bytes) and run its query: a Selection, or QueryError
    saying what to change."""
    try:
        text = bytes(raw).decode("utf-8").strip()
    except UnicodeDecodeError:
        raise QueryError("the ticket is not UTF-8 text", _TICKET_HINT) from None
    if text in DESCRIPTORS:
        params = {"dataset": text}
    else:
        try:
            params = json.loads(text)
        except ValueError as exc:
            raise QueryError(f"the ticket is not JSON ({exc})", _TICKET_HINT) from None
    if not isinstance(params, dict):
        raise QueryError(f"the ticket is a JSON {type(params).__name__}, not an object", _TICKET_HINT)
    layout = params.get("layout", LONG)
    if not isinstance(layout, str) or layout.strip().lower() not in LAYOUTS:
        raise QueryError(f"unknown layout {layout!r}", 'use "layout": "long" (the default) or "layout": "wide"')
    layout = layout.strip().lower()
    if "dataset" in params:
        _check_keys(params, DATASET_KEYS, "a data set ticket")
        return Selection(_whole_dataset(store, params["dataset"], params.get("hubs")), layout)
    _check_keys(params, QUERY_KEYS, "a query ticket")
    try:
        checked = query.parse_query(params, store, max_range_days)
    except RangeTooLargeError as exc:
        raise RangeTooLargeError(
            exc.message,
            "ask for a shorter range, or for a whole data set with a ticket like "
            '{"dataset": "real_time_15min", "hubs": ["HB_NORTH"]} (no range limit)',
        ) from None
    return Selection(query.run_query(store, checked), layout, checked.tz)


def _check_keys(params, allowed, what):
    unknown = [k for k in params if k not in allowed]
    if unknown:
        raise QueryError(
            f"unknown key{'s' if len(unknown) > 1 else ''} in the ticket: {', '.join(map(str, unknown))}",
            f"{what} takes {', '.join(allowed)}",
        )


def dataset_ticket(name):
    """The ticket of a whole data set, as list_flights hands it out."""
    return json.dumps({"dataset": name}).encode()


def _whole_dataset(store, name, hubs):
    """Every instant of a data set, through the query layer (which checks
    ``hubs``); the range is the data set's own, so no limit applies."""
    if not isinstance(name, str) or name not in DESCRIPTORS:
        raise QueryError(f"unknown data set {name!r}", f"use one of {', '.join(DESCRIPTORS)} (see list_flights)")
    name = DAY_AHEAD if name == COMPATIBILITY else name
    dataset = store.datasets[name]
    price_type, resolution = _DATASET_QUERY[name]
    if hubs is None:
        if name == ANCILLARY_SERVICES:
            hubs = query.ancillary_products(dataset)
        else:
            hubs = sorted(dataset.columns, key=settlement_point_order)
        if not hubs:  # a data set without any series: nothing to select
            return query.PriceResult(dataset.timestamps[:0], [], [])
    first, last = (dataset.timestamps[0], dataset.timestamps[-1]) if len(dataset) else (0, 0)
    params = {
        "price_type": price_type,
        "resolution": resolution,
        "start_date": _rfc3339(first),
        "end_date": _rfc3339(last),
        "hubs": hubs,
    }
    span_days = int(last - first) // timeutil.MS_PER_DAY + 2  # the data set's own span passes
    return query.run_query(store, query.parse_query(params, store, span_days))


def _rfc3339(ms):
    moment = _EPOCH + dt.timedelta(milliseconds=int(ms))  # exact: no float seconds
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


# --- Arrow layout ------------------------------------------------------------


def result_schema(selection, synthetic=False):
    """The schema do_get sends for ``selection``."""
    metadata = {SYNTHETIC_KEY: b"true"} if synthetic else None
    fields = [pa.field("datetime", pa.timestamp("ms", tz=selection.tz), nullable=False)]
    if selection.layout == LONG:
        fields += [pa.field("hub", pa.utf8(), nullable=False), pa.field("price", pa.float64())]
    else:
        fields += [pa.field(name, pa.float64()) for name in selection.result.names]
    return pa.schema(fields, metadata=metadata)


def _rows_per_batch(bytes_per_row):
    return max(1, min(MAX_BATCH_ROWS, MAX_BATCH_BYTES // bytes_per_row))


def result_parts(selection, schema):
    """The answer as Tables of bounded record batches (zero-copy slices):
    the wide answer in one part, the long answer one part per hub, so only one
    hub column at a time is alive while it streams. Yields ``(table,
    wire_bytes)``: the size of its Arrow buffers as the client receives them
    (a validity bitmap only where there are nulls)."""
    result = selection.result
    timestamps = np.ascontiguousarray(result.timestamps, dtype=np.int64)
    rows = len(timestamps)
    # NOTE: from_buffers wraps the store's int64 memory; pa.array could copy it.
    times = pa.Array.from_buffers(schema.field(0).type, rows, [None, pa.py_buffer(timestamps)])
    if selection.layout == WIDE:
        yield _part(_wide_batches(times, result.columns, schema), schema)
        return
    if rows == 0:
        return
    offsets = {}  # (name length, rows) -> int32 offsets 0, L, 2L, ..., shared by hubs
    for name, column in zip(result.names, result.columns):
        yield _part(_hub_batches(times, name, column, schema, offsets), schema)


def _wide_batches(times, columns, schema):
    step = _rows_per_batch(8 * (1 + len(columns)) + (len(columns) + 7) // 8)
    for start in range(0, len(times), step):
        prices = [column.slice(start, step) for column in columns]
        batch = pa.RecordBatch.from_arrays([times.slice(start, step), *prices], schema=schema)
        yield batch, _fixed_width_bytes(batch.num_rows, prices)


def _hub_batches(times, name, column, schema, offsets):
    encoded = name.encode()
    step = _rows_per_batch(8 + 4 + len(encoded) + 8 + 1)
    # PERF: one hub array per series, sliced for every batch of that series
    hubs = _repeated(encoded, min(step, len(times)), offsets)
    for start in range(0, len(times), step):
        price = column.slice(start, step)
        count = len(price)
        batch = pa.RecordBatch.from_arrays([times.slice(start, step), hubs.slice(0, count), price], schema=schema)
        yield batch, _fixed_width_bytes(count, [price]) + 4 * (count + 1) + count * len(encoded)


def _part(batches_and_bytes, schema):
    batches, total = [], 0
    for batch, wire_bytes in batches_and_bytes:
        batches.append(batch)
        total += wire_bytes
    return pa.Table.from_batches(batches, schema=schema), total


def _repeated(encoded, rows, offsets):
    """A utf8 array of ``rows`` copies of ``encoded`` (valid UTF-8), built from
    two buffers (PERF: several times faster than ``pa.repeat``)."""
    width = len(encoded)
    key = (width, rows)
    if key not in offsets:
        offsets[key] = pa.py_buffer(np.arange(0, (rows + 1) * width, width, dtype=np.int32))
    return pa.Array.from_buffers(pa.utf8(), rows, [None, offsets[key], pa.py_buffer(encoded * rows)])


def _fixed_width_bytes(rows, price_columns):
    """Bytes of one batch's timestamps and float64 columns on the wire."""
    bitmaps = sum((rows + 7) // 8 for c in price_columns if c.null_count)
    return 8 * rows * (1 + len(price_columns)) + bitmaps


def result_counts(selection, schema):
    """``(total_records, total_bytes)`` of what do_get sends, as FlightInfo
    reports them (the parts are built and dropped one at a time)."""
    records = total_bytes = 0
    for table, wire_bytes in result_parts(selection, schema):
        records += table.num_rows
        total_bytes += wire_bytes
    return records, total_bytes


def result_stream(selection, schema):
    """The FlightDataStream of do_get: schema first, then bounded batches.
    PERF: each part streams from C++ without the GIL, batch by batch."""
    parts = (table for table, _ in result_parts(selection, schema))
    if selection.layout == WIDE:
        return flight.RecordBatchStream(next(parts))
    return flight.GeneratorStream(schema, parts)


# --- the server --------------------------------------------------------------


def _answers_errors(method):
    """Bad input -> INVALID_ARGUMENT with what to change; a fault -> INTERNAL,
    logged here and not leaked. (pyarrow maps a Python ValueError to
    INVALID_ARGUMENT and KeyError to NOT_FOUND.)"""

    @functools.wraps(method)
    def wrapper(self, context, *args):
        try:
            return method(self, context, *args)
        except QueryError as exc:
            log.info("%s rejected: %s", method.__name__, exc.message)
            details = exc.details.replace("/api/available_hubs", "the available_hubs action")
            raise ValueError(f"{exc.message}; {details}") from None
        except (flight.FlightError, _NotFound):
            raise
        except Exception:
            log.exception("internal error in %s", method.__name__)
            raise flight.FlightInternalError("internal server error; the fault is logged on the server") from None

    return wrapper


class PriceFlightServer(flight.FlightServerBase):
    """Flight over an already loaded store (never reads files). Serving
    starts when constructed; ``shutdown()`` stops it."""

    def __init__(self, store, location, max_range_days=query.DEFAULT_MAX_RANGE_DAYS, **kwargs):
        super().__init__(location, **kwargs)
        self._store = store
        self._max_range_days = max_range_days
        self._dataset_infos = {}  # descriptor name -> FlightInfo (the store never changes)

    def _selection(self, descriptor):
        """(Selection, ticket bytes) of a path or command descriptor."""
        if descriptor.descriptor_type == flight.DescriptorType.PATH:
            path = [p.decode("utf-8", "replace") if isinstance(p, bytes) else str(p) for p in descriptor.path]
            if len(path) != 1 or path[0] not in DESCRIPTORS:
                raise _NotFound(f"no flight {'/'.join(path)!r}; use one of {', '.join(DESCRIPTORS)} or a command")
            ticket = dataset_ticket(path[0])
        elif descriptor.descriptor_type == flight.DescriptorType.CMD:
            ticket = descriptor.command
        else:
            raise QueryError("the descriptor is neither a path nor a command", _TICKET_HINT)
        return parse_ticket(ticket, self._store, self._max_range_days), ticket

    def _flight_info(self, descriptor):
        selection, ticket = self._selection(descriptor)
        schema = result_schema(selection, self._store.synthetic)
        records, total_bytes = result_counts(selection, schema)
        endpoint = flight.FlightEndpoint(ticket, [])  # no location: redeem it here
        return flight.FlightInfo(schema, descriptor, [endpoint], records, total_bytes)

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
        if descriptor.descriptor_type == flight.DescriptorType.PATH and len(descriptor.path) == 1:
            name = descriptor.path[0].decode("utf-8", "replace")
            if name in DESCRIPTORS:
                return self._dataset_info(name)
        return self._flight_info(descriptor)

    @_answers_errors
    def get_schema(self, context, descriptor):
        selection, _ = self._selection(descriptor)
        return flight.SchemaResult(result_schema(selection, self._store.synthetic))

    @_answers_errors
    def do_get(self, context, ticket):
        selection = parse_ticket(ticket.ticket, self._store, self._max_range_days)
        result = selection.result
        log.info(
            "do_get %s: %d instants x %d series from %s",
            selection.layout,
            len(result.timestamps),
            len(result.names),
            context.peer(),
        )
        return result_stream(selection, result_schema(selection, self._store.synthetic))

    def list_actions(self, context):
        return list(ACTIONS)

    @_answers_errors
    def do_action(self, context, action):
        handler = getattr(self, f"_action_{action.type}", None)
        if handler is None:
            names = ", ".join(name for name, _ in ACTIONS)
            raise _NotFound(f"unknown action {action.type!r}; use one of {names} (see list_actions)")
        return [flight.Result(json.dumps(handler()).encode())]

    def _action_healthcheck(self):
        if self._store.total_rows == 0:
            raise flight.FlightUnavailableError(f"no prices were loaded from {self._store.data_dir}; see the service log")
        body = {
            "status": "healthy",
            "service": HEALTHY_SERVICE,
            "timestamp": dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
        }
        if self._store.synthetic:
            body["data"] = "synthetic demo data, not real ERCOT prices"
        return body

    def _action_available_hubs(self):
        return list(self._store.settlement_points)

    def _action_describe(self):
        datasets = {}
        for name, dataset in self._store.datasets.items():
            datasets[name] = {
                "rows": len(dataset),
                "series": len(dataset.columns),
                "interval_minutes": dataset.interval_ms // timeutil.MS_PER_MINUTE,
                "first": _rfc3339(dataset.timestamps[0]) if len(dataset) else None,
                "last": _rfc3339(dataset.timestamps[-1]) if len(dataset) else None,
            }
        return {
            "service": HEALTHY_SERVICE,
            "pid": os.getpid(),
            "synthetic": self._store.synthetic,
            "files_loaded": self._store.files_loaded,
            "datasets": datasets,
            "max_range_days": self._max_range_days,
            "max_batch_rows": MAX_BATCH_ROWS,
            "max_batch_bytes": MAX_BATCH_BYTES,
        }


# --- the child process -------------------------------------------------------

_STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT)
_PR_SET_PDEATHSIG = 1


class FlightStartError(RuntimeError):
    """The Flight server could not start (for example, its port is taken)."""


def location_of(addr):
    """'HOST:PORT' -> 'grpc://HOST:PORT'."""
    return f"grpc://{addr}"


def _die_with_parent():
    """Linux: SIGTERM this process when the master dies, even by SIGKILL."""
    try:
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0)
    except (OSError, AttributeError):  # not Linux: the master's stop() still ends it
        pass


def _child_main(store, addr, max_range_days, master_pid, ready_fd):
    """Body of the forked Flight child. Returns its exit code."""
    # The fork copied the master's signal handlers (gunicorn's): reset them.
    # Stop signals are blocked before gRPC starts its threads (they inherit the
    # mask) and taken by sigwait below, in this thread.
    signal.set_wakeup_fd(-1)
    for sig in (signal.SIGCHLD, signal.SIGQUIT, signal.SIGTTIN, signal.SIGTTOU, signal.SIGUSR1, signal.SIGUSR2, signal.SIGWINCH):
        signal.signal(sig, signal.SIG_DFL)
    signal.signal(signal.SIGHUP, signal.SIG_IGN)  # the master reloads, then restarts us
    signal.pthread_sigmask(signal.SIG_BLOCK, _STOP_SIGNALS)
    _die_with_parent()
    if os.getppid() != master_pid:  # the master died before prctl took effect
        return 0
    # NOTE: inherited descriptors (the HTTP listener, gunicorn's pipes) must not
    # stay open here: a listener would keep its port after the master exits.
    os.closerange(3, ready_fd)
    os.closerange(ready_fd + 1, _max_fd())
    try:
        server = PriceFlightServer(store, location_of(addr), max_range_days)
    except Exception as exc:
        os.write(ready_fd, f"error {exc}".encode())
        os.close(ready_fd)
        return 1
    os.write(ready_fd, f"ok {server.port}".encode())
    os.close(ready_fd)
    received = signal.sigwait(_STOP_SIGNALS)
    log.info("Arrow Flight server (pid %d) stopping on %s", os.getpid(), signal.Signals(received).name)
    server.shutdown()  # lets streams in flight finish; the master bounds the wait
    return 0


def _max_fd():
    try:
        return os.sysconf("SC_OPEN_MAX")
    except (ValueError, OSError):
        return 4096


class FlightProcess:
    """The Flight server in one child process, owned by the master that
    started it: start, stop, restart over a new store, and keep alive."""

    RESTART_DELAYS = (0, 1, 2, 5, 10, 30, 60)  # seconds, after quick crashes
    STABLE_SECONDS = 60  # a child that ran this long restarts without delay

    def __init__(self, addr, max_range_days=query.DEFAULT_MAX_RANGE_DAYS):
        self.addr = addr
        self.max_range_days = max_range_days
        self.pid = None
        self.port = None
        self._owner = os.getpid()
        self._started_at = 0.0
        self._crashes = 0
        self._restart_at = None  # monotonic time of a pending restart
        self._retiring = []  # stopped children not yet reaped

    def start(self, store, timeout=30.0):
        """Fork the child over ``store`` and wait until it serves. Retries
        while the port is still held by a child that is shutting down, then
        raises FlightStartError."""
        deadline = time.monotonic() + timeout
        while True:
            try:
                return self._start_once(store, deadline)
            except FlightStartError:
                self._reap_retiring()
                if time.monotonic() >= deadline or not self._retiring:
                    raise
                time.sleep(0.05)

    def _start_once(self, store, deadline):
        read_fd, write_fd = os.pipe()
        sys.stdout.flush()
        sys.stderr.flush()
        pid = os.fork()
        if pid == 0:  # the child never returns into the master's code
            code = 1
            try:
                os.close(read_fd)
                code = _child_main(store, self.addr, self.max_range_days, self._owner, write_fd)
            except BaseException:
                log.exception("Arrow Flight server (pid %d) failed", os.getpid())
            finally:
                logging.shutdown()
                os._exit(code)
        os.close(write_fd)
        try:
            message = _read_message(read_fd, deadline)
        finally:
            os.close(read_fd)
        if not message.startswith("ok "):
            self._wait(pid, max(0.0, deadline - time.monotonic()))
            raise FlightStartError(f"Arrow Flight cannot serve on {self.addr}: {message.removeprefix('error ') or 'no answer'}")
        self.pid, self.port = pid, int(message.split()[1])
        self._started_at = time.monotonic()
        log.info("Arrow Flight serving on %s (pid %d, port %d)", location_of(self.addr), pid, self.port)
        return pid

    def stop(self, timeout=10.0):
        """SIGTERM the child and wait for it (SIGKILL after ``timeout``).
        A no-op outside the master (gunicorn workers inherit this object)."""
        if os.getpid() != self._owner:
            return
        self._retire()
        deadline = time.monotonic() + timeout
        for pid in self._retiring:
            self._wait(pid, max(0.0, deadline - time.monotonic()))
        self._retiring.clear()
        self._restart_at = None

    def _retire(self):
        """SIGTERM the serving child; it is reaped later, as a retiring one."""
        if self.pid is not None:
            _signal(self.pid, signal.SIGTERM)
            self._retiring.append(self.pid)
            self.pid = None

    def restart(self, store):
        """Serve ``store`` instead (after a reload). Streams in flight finish
        on the old child; new calls reach the new one."""
        if os.getpid() != self._owner:
            return
        self._retire()
        try:
            self.start(store)
        except FlightStartError as exc:
            log.error("%s; retrying", exc)
            self._schedule_restart()

    def reap(self):
        """Collect an exited child before gunicorn's ``waitpid(-1)`` does (it
        would take the exit status silently); schedule a restart after a crash."""
        self._reap_retiring()
        if self.pid is None:
            return
        try:
            pid, status = os.waitpid(self.pid, os.WNOHANG)
        except ChildProcessError:  # reaped elsewhere: the status is lost
            pid, status = self.pid, None
        if pid == 0:
            return
        self.pid = None
        if status is not None and os.WIFEXITED(status) and os.WEXITSTATUS(status) == 0:
            # NOTE: like systemd's Restart=on-failure: someone stopped it on purpose
            log.warning("Arrow Flight server (pid %d) was stopped; SIGHUP the master to start it again", pid)
            return
        if time.monotonic() - self._started_at >= self.STABLE_SECONDS:
            self._crashes = 0
        log.error("Arrow Flight server (pid %d) %s; restarting it", pid, _describe_status(status))
        self._schedule_restart()

    def keep_alive(self, store):
        """Restart a crashed child when its back-off delay has passed."""
        if os.getpid() != self._owner:
            return
        self.reap()
        if self.pid is None and self._restart_at is not None and time.monotonic() >= self._restart_at:
            self._restart_at = None
            try:
                self.start(store, timeout=10.0)
            except FlightStartError as exc:
                log.error("%s; retrying", exc)
                self._schedule_restart()

    def _schedule_restart(self):
        """Restart at once after the first crash, then back off."""
        delay = self.RESTART_DELAYS[min(self._crashes, len(self.RESTART_DELAYS) - 1)]
        self._crashes += 1
        self._restart_at = time.monotonic() + delay

    def _reap_retiring(self):
        for pid in list(self._retiring):
            try:
                done, _ = os.waitpid(pid, os.WNOHANG)
            except ChildProcessError:
                done = pid
            if done:
                self._retiring.remove(pid)

    @staticmethod
    def _wait(pid, timeout):
        """Wait for ``pid`` to exit; SIGKILL it after ``timeout``."""
        deadline = time.monotonic() + timeout
        killed = False
        while True:
            try:
                done, _ = os.waitpid(pid, os.WNOHANG)
            except ChildProcessError:
                return
            if done:
                return
            if time.monotonic() >= deadline:
                if killed:
                    log.error("Arrow Flight server (pid %d) survives SIGKILL; giving up on it", pid)
                    return
                log.warning("Arrow Flight server (pid %d) did not stop in time: killed", pid)
                _signal(pid, signal.SIGKILL)
                killed, deadline = True, time.monotonic() + 5
            time.sleep(0.02)


def _read_message(fd, deadline):
    """The child's one-line readiness message ('' when it died silently)."""
    chunks = []
    while True:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            return "error no answer in time"
        ready, _, _ = select.select([fd], [], [], remaining)
        if not ready:
            continue
        chunk = os.read(fd, 4096)
        if not chunk:
            return b"".join(chunks).decode("utf-8", "replace")
        chunks.append(chunk)


def _signal(pid, sig):
    try:
        os.kill(pid, sig)
    except OSError as exc:
        if exc.errno != errno.ESRCH:
            raise


def _describe_status(status):
    if status is None:
        return "exited"
    if os.WIFSIGNALED(status):
        return f"was killed by {signal.Signals(os.WTERMSIG(status)).name}"
    return f"exited with code {os.waitstatus_to_exitcode(status)}"
