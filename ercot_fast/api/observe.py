"""The seam's observation layer (``api.seam``): every HTTP request, whichever
path answered it, measured once, then written to the access log and counted
in the metrics (``metrics.counters``).

The access log has one line per request (``logs.access_line``, buffered by
``logs.lines``): the time the request arrived (UTC, ms), method, route (``-``
for a path that is no route: a raw path is never logged), status, body bytes,
microseconds spent answering, the client address and the API key's name
(``-`` without one). Text::

    2026-12-02T00:30:01.123Z GET /api/prices 200 5912 41us 127.0.0.1 desk-a

or JSON (``--log-format json``), one object per line::

    {"time": "2026-12-02T00:30:01.123Z", "method": "GET", "route": "/api/prices", "status": 200,
     "bytes": 5912, "microseconds": 41, "client": "127.0.0.1", "api_key": "desk-a"}

The metrics: requests by route, status and path (fast path or Falcon), body
bytes by route, and a latency histogram by route.
"""
import re
import time

from ercot_fast import logs
from ercot_fast.api.fastpath import ANSWERED_BY
from ercot_fast.api.seam import KEY_NAME

_METHODS = frozenset(("GET", "HEAD", "POST", "OPTIONS", "PUT", "DELETE", "PATCH"))
_ADDRESS = re.compile(r"[0-9A-Fa-f:.]{1,45}")  # IPv4 or IPv6: nothing to escape in a log line
REQUESTS = "ercot_fast_http_requests"
DURATION = "ercot_fast_http_request_duration_seconds"
BYTES = "ercot_fast_http_response_bytes"


def layer(routes, log_format=None, counters=None, fd=2):
    """The layer logging (``log_format`` text or json; None: no access log,
    to the descriptor ``fd``) and counting (in ``counters``; None: not) the
    requests to ``routes`` (other paths as ``-``)."""
    routes = frozenset(routes)
    line = logs.access_line(log_format) if log_format else None
    clock = logs.Clock()
    series = _Series()

    def wrap(app):
        perf_counter = time.perf_counter

        def observed(environ, start_response):
            started = perf_counter()
            answered = []

            def start(status, headers, exc_info=None):
                answered.append(status)
                return start_response(status, headers, exc_info)

            body = app(environ, start)
            seconds = perf_counter() - started
            # PERF: every answer of ours is a list of bytes: its length is what is sent (0 for HEAD)
            size = sum(map(len, body)) if type(body) is list else None
            path = environ.get("PATH_INFO")
            route = path if path in routes else "-"
            status = answered[-1][:3] if answered else "500"
            if counters is not None:
                counted = series.of(route, status, environ.get(ANSWERED_BY))
                counters.add(counted.requests)
                counters.observe(counted.duration, seconds)
                if size:
                    counters.add(counted.bytes, size)
            if line is not None:
                method = environ.get("REQUEST_METHOD")
                client = environ.get("REMOTE_ADDR")
                logs.lines(fd).add(line(
                    clock.text(),
                    method if method in _METHODS else "-",
                    route,
                    status,
                    "-" if size is None else size,
                    int(seconds * 1e6),
                    client if client in _seen_clients or _known_client(client) else "-",
                    environ.get(KEY_NAME, "-"),
                ))
            return body

        return observed

    return wrap


class _Counted:
    __slots__ = ("requests", "duration", "bytes")

    def __init__(self, route, status, path):
        self.requests = (REQUESTS, (("route", route), ("status", status), ("path", path or "-")))
        self.duration = (DURATION, (("route", route),))
        self.bytes = (BYTES, (("route", route),))


class _Series:
    """The metric series of a (route, status, path), made once. PERF."""

    def __init__(self):
        self._made = {}

    def of(self, route, status, path):
        key = (route, status, path)
        counted = self._made.get(key)
        if counted is None:
            counted = self._made[key] = _Counted(route, status, path)
        return counted


_seen_clients = set()  # addresses already checked (bounded: see _known_client)


def _known_client(address):
    """True for an IP address (nothing to escape in a log line), remembered."""
    if not address or not _ADDRESS.fullmatch(address):
        return False
    if len(_seen_clients) > 10_000:
        _seen_clients.clear()
    _seen_clients.add(address)
    return True
