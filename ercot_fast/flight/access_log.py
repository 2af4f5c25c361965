"""The access log of Flight calls: one line per call when it completes, in
the HTTP access log's format (``logs.access_line``): the method is
``FLIGHT``, the route the RPC (``DoGet``, ``GetFlightInfo``, ...), the status
its gRPC code. A ``pyarrow.flight`` server middleware (the Flight seam): it
sees every call, Flight SQL's too. Neither the bytes streamed nor the peer
reach a middleware: they are ``-``."""
import os
import time

import pyarrow as pa
import pyarrow.flight as flight

from ercot_fast import logs

# exception raised by a call -> its gRPC status, as pyarrow maps them (most specific first)
_STATUS = (
    (flight.FlightTimedOutError, "TIMED_OUT"),
    (flight.FlightUnavailableError, "UNAVAILABLE"),
    (flight.FlightUnauthenticatedError, "UNAUTHENTICATED"),
    (flight.FlightUnauthorizedError, "PERMISSION_DENIED"),
    (flight.FlightCancelledError, "CANCELLED"),
    (flight.FlightInternalError, "INTERNAL"),
    (NotImplementedError, "UNIMPLEMENTED"),
    (pa.ArrowNotImplementedError, "UNIMPLEMENTED"),
    (KeyError, "NOT_FOUND"),
    (pa.ArrowKeyError, "NOT_FOUND"),
    (ValueError, "INVALID_ARGUMENT"),
    (pa.ArrowInvalid, "INVALID_ARGUMENT"),
)


def status_of(exception):
    if exception is None:
        return "OK"
    return next((code for kind, code in _STATUS if isinstance(exception, kind)), "UNKNOWN")


class AccessLog(flight.ServerMiddlewareFactory):
    """Writes one access log line per Flight call to ``fd`` (stderr)."""

    def __init__(self, log_format=logs.TEXT, fd=2):
        super().__init__()
        self._line = logs.access_line(log_format)
        self._clock = logs.Clock()
        self._fd = fd

    def start_call(self, info, headers):
        return _Call(self, _method_name(info.method), self._clock.text())

    def write(self, text):
        os.write(self._fd, text.encode())


def _method_name(method):
    """DoGet, GetFlightInfo, ... of a FlightMethod."""
    return "".join(part.title() for part in method.name.split("_"))


class _Call(flight.ServerMiddleware):
    def __init__(self, log, method, when):
        super().__init__()
        self._log = log
        self._method = method
        self._when = when
        self._started = time.perf_counter()

    def call_completed(self, exception):
        microseconds = int((time.perf_counter() - self._started) * 1e6)
        self._log.write(self._log._line(self._when, "FLIGHT", self._method, status_of(exception), "-", microseconds, "-"))
