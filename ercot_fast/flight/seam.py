"""The Flight seam: one ``pyarrow.flight`` server middleware that sees every
call (Flight SQL's too), the counterpart of the HTTP seam (``api.seam``).

- API keys: with keys configured, a call carries ``authorization: Bearer
  <key>`` (``FlightCallOptions(headers=...)``), or made a basic-auth
  handshake first (``authenticate_basic_token(name, key)``), whose answer
  is that bearer header; else it is refused UNAUTHENTICATED, saying how.
- The rate limit (``access.limits``), shared with the HTTP workers, is
  taken by the server's methods (``admit``), which see the peer's address
  that a middleware does not: a call over it is refused UNAVAILABLE with the
  seconds to wait.
- The access log: one line per call when it completes, in the HTTP access
  log's format (``logs.access_line``): the method is ``FLIGHT``, the route
  the RPC (``DoGet``, ``GetFlightInfo``, ...), the status its gRPC code.
  Neither the bytes streamed nor the peer reach a middleware: they are ``-``.
- Metrics: calls by method and status, and their durations by method
  (``metrics.counters``); the server counts the rows and bytes it streams.
"""
import base64
import binascii
import time

import pyarrow as pa
import pyarrow.flight as flight

from ercot_fast import logs
from ercot_fast.access import keys

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
CALLS, DURATION = "ercot_fast_flight_calls", "ercot_fast_flight_call_duration_seconds"
RATE_LIMITED = ("ercot_fast_rate_limited", (("protocol", "flight"),))
SEND_IT = ("send it as the header authorization: Bearer <key> (pyarrow: FlightCallOptions(headers=[(b'authorization', "
           "b'Bearer <key>')]); ercot_fast.client.PriceClient(api_key=...)), or authenticate_basic_token(<name>, <key>) first")


def status_of(exception):
    if exception is None:
        return "OK"
    return next((code for kind, code in _STATUS if isinstance(exception, kind)), "UNKNOWN")


class Seam(flight.ServerMiddlewareFactory):
    """``api_keys()``: the accepted ``access.keys.ApiKeys`` now (they change on
    SIGHUP); ``limit``: an ``access.limits.RateLimit`` or None;
    ``log_format``: text or json, None: no access log (written to ``fd``);
    ``counters``: the process's ``metrics.counters.Counters``, or None."""

    NAME = "seam"  # its name among the server's middleware

    def __init__(self, api_keys, limit=None, log_format=None, counters=None, fd=2):
        super().__init__()
        self._api_keys = api_keys
        self.limit = limit
        self.counters = counters
        self._line = logs.access_line(log_format) if log_format else None
        self._clock = logs.Clock()
        self._fd = fd

    def start_call(self, info, headers):
        method = _method_name(info.method)
        call = _Call(self, method, self._clock.text())
        try:
            call.name, call.token = self._identify(headers)
        except flight.FlightError as exc:
            call.call_completed(exc)  # NOTE: a middleware refusing the call is never told it completed
            raise
        return call

    def _identify(self, headers):
        """(the key's name, the bearer token to send back) of a call; raises
        UNAUTHENTICATED when keys are required and none is accepted."""
        accepted = self._api_keys()
        authorization = _header(headers, "authorization")
        key = keys.presented(_header(headers, "x-api-key"), authorization)
        token = None
        if key is None and authorization and authorization.lower().startswith("basic "):
            key = token = _basic_password(authorization) or "-"
        if not accepted.enabled:  # open: a handshake is answered all the same (ADBC insists on a bearer header)
            return None, token
        name = accepted.identify(key)
        if name is None:
            what = "the API key sent is not accepted: check it" if key else f"this service needs an API key: {SEND_IT}"
            raise flight.FlightUnauthenticatedError(what)
        return name, token

    def log(self, call, status):
        seconds = time.perf_counter() - call.started
        counters = self.counters
        if counters is not None:
            counters.add((CALLS, (("method", call.method), ("status", status))))
            counters.observe((DURATION, (("method", call.method),)), seconds)
        if self._line is not None:
            logs.lines(self._fd).add(self._line(call.when, "FLIGHT", call.method, status, "-", int(seconds * 1e6), "-",
                                                call.name or "-"))


def _method_name(method):
    """DoGet, GetFlightInfo, ... of a FlightMethod."""
    return "".join(part.title() for part in method.name.split("_"))


def _header(headers, name):
    values = headers.get(name)  # NOTE: gRPC lower-cases header names
    if not values:
        return None
    value = values[0]
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else value


def _basic_password(authorization):
    """The password of ``Basic <base64 of name:password>`` (padded or not: Go's ADBC driver leaves it out)."""
    encoded = authorization.split(" ", 1)[1].strip() if " " in authorization else ""
    try:
        decoded = base64.b64decode(encoded + "=" * (-len(encoded) % 4), validate=True).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError, IndexError):
        return None
    return decoded.partition(":")[2] or None


def admit(context):
    """In a server method: take the call's token from its key's bucket (its
    peer address's without keys), or refuse it UNAVAILABLE."""
    call = context.get_middleware(Seam.NAME)
    limit = call.seam.limit if call is not None else None
    if limit is None:
        return
    wait = limit.take(call.name or f"addr:{_address(context.peer())}")
    if wait:
        if call.seam.counters is not None:
            call.seam.counters.add(RATE_LIMITED)
        raise flight.FlightUnavailableError(f"rate limit exceeded: the limit is {limit.describe()} per API key (or client "
                                            f"address); retry in {limit.retry_after(wait)} s")


def _address(peer):
    """'ipv4:127.0.0.1:50312' / 'ipv6:[::1]:50312' -> the address without the port."""
    peer = peer.decode() if isinstance(peer, bytes) else str(peer)
    return peer.partition(":")[2].rpartition(":")[0].strip("[]") or peer


class _Call(flight.ServerMiddleware):
    def __init__(self, seam, method, when):
        super().__init__()
        self.seam = seam
        self.method = method
        self.when = when
        self.started = time.perf_counter()
        self.name = None
        self.token = None

    def sending_headers(self):
        if self.token:  # the answer to a basic-auth handshake: the bearer token for the next calls
            return {"authorization": f"Bearer {self.token}"}
        return {}

    def call_completed(self, exception):
        self.seam.log(self, status_of(exception))
