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

PERF: a request only notes what it saw (two clock reads and a tuple appended
to a list); its line is formatted and its metrics counted later, a batch at
a time (every ``BATCH`` requests, and at the latest a quarter of a second
later, by a daemon thread; before a scrape reads the counts; at exit). Work
done per request in the server runs with cold caches (the kernel's network
stack runs between two requests) and costs several times what a tight loop
measures; the same work done for a batch in one loop stays warm
(``bench/bench_observe.py``). A process killed with SIGKILL loses at most
that quarter second of lines and counts.
"""
import atexit
import os
import re
import threading
import time
from bisect import bisect_left

from ercot_fast import logs
from ercot_fast.api.fastpath import ANSWERED_BY
from ercot_fast.api.seam import KEY_NAME
from ercot_fast.metrics.counters import BUCKETS

_METHODS = frozenset(("GET", "HEAD", "POST", "OPTIONS", "PUT", "DELETE", "PATCH"))
_ADDRESS = re.compile(r"[0-9A-Fa-f:.]{1,45}")  # IPv4 or IPv6: nothing to escape in a log line
REQUESTS = "ercot_fast_http_requests"
DURATION = "ercot_fast_http_request_duration_seconds"
BYTES = "ercot_fast_http_response_bytes"
BATCH = 64  # requests noted before the one that notes the last formats and counts them all
FLUSH_SECONDS = 0.25


def layer(routes, log_format=None, counters=None, fd=2):
    """The layer logging (``log_format`` text or json; None: no access log,
    to the descriptor ``fd``) and counting (in ``counters``; None: not) the
    requests to ``routes`` (other paths as ``-``); neither: no layer at all."""
    if log_format is None and counters is None:
        return lambda app: app
    how = _How(frozenset(routes), logs.access_line(log_format) if log_format else None, counters, fd)
    if counters is not None:
        counters.before_reading(flush)  # a scrape counts what was noted up to it

    def wrap(app):
        perf_counter = time.perf_counter

        def observed(environ, start_response):
            started = perf_counter()
            answered = []

            def start(status, headers, exc_info=None):
                answered.append(status)
                return start_response(status, headers, exc_info)

            body = app(environ, start)
            if not _flushing:
                _start_flushing()
            records = _records
            # every answer of ours is a list of bytes: its length is what is sent (0 for HEAD)
            records.append((how, started, perf_counter(), answered, sum(map(len, body)) if type(body) is list else None,
                            environ.get("REQUEST_METHOD"),
                            environ.get("PATH_INFO"), environ.get("REMOTE_ADDR"), environ.get(ANSWERED_BY),
                            environ.get(KEY_NAME, "-")))
            if len(records) >= BATCH:
                flush()
            return body

        return observed

    return wrap


class _How:
    """What a layer does with its requests' records."""

    __slots__ = ("routes", "line", "counters", "fd", "_series")

    def __init__(self, routes, line, counters, fd):
        self.routes, self.line, self.counters, self.fd = routes, line, counters, fd
        self._series = {}

    def series_of(self, route, status, taken):
        """The (requests, duration, bytes) series of a route, status and path taken, made once."""
        series = self._series.get((route, status, taken))
        if series is None:
            series = self._series[route, status, taken] = (
                (REQUESTS, (("route", route), ("status", status), ("path", taken or "-"))),
                (DURATION, (("route", route),)),
                (BYTES, (("route", route),)),
            )
        return series


# --- this process's records ---------------------------------------------------------------------

_records = []  # noted, not yet accounted for
_lock = threading.Lock()
_flushing = False  # the flushing thread runs (in this process: see _forked)


def _forked():
    """In a forked child: its own records and lock, its own thread (started at its first request)."""
    global _records, _lock, _flushing
    _records, _lock, _flushing = [], threading.Lock(), False


os.register_at_fork(after_in_child=_forked)


def _start_flushing():
    global _flushing
    _flushing = True
    threading.Thread(target=_flush_now_and_then, name="access-log", daemon=True).start()


def flush():
    """Format, write and count every record this process has noted."""
    records = _records
    with _lock:
        # NOTE: under the GIL a slice and a del are each atomic: a record
        # appended meanwhile stays for the next flush
        batch = records[:]
        if not batch:
            return
        del records[:len(batch)]
        _account(batch)


@atexit.register
def _at_exit():
    flush()
    logs.flush_lines()  # NOTE: the lines buffered by that flush too


def _flush_now_and_then():
    records = _records
    while records is _records:  # NOTE: a forked child's copy of this thread does not run: it has its own
        time.sleep(FLUSH_SECONDS)
        flush()


_clock = logs.Clock()


def _account(batch):
    """Write the lines of a batch of records and count them (PERF: tallied
    in the batch first, then added to the counters once per series)."""
    wall = time.time() - time.perf_counter()  # perf_counter -> epoch seconds, good to the ms over a batch
    lines = {}  # fd -> lines
    tallies = {}  # (how, route, status, path taken) -> [requests, bytes, bucket counts..., seconds]
    at = _clock.at
    for how, started, ended, answered, size, method, path, client, taken, key in batch:
        seconds = ended - started
        route = path if path in how.routes else "-"
        status = answered[-1][:3] if answered else "500"
        if how.counters is not None:
            tally = tallies.get((how, route, status, taken))
            if tally is None:
                tally = tallies[how, route, status, taken] = [0] * (len(BUCKETS) + 4)
            tally[0] += 1
            tally[1] += size or 0
            tally[2 + bisect_left(BUCKETS, seconds)] += 1
            tally[-1] += seconds
        if how.line is not None:
            text = lines.get(how.fd)
            if text is None:
                text = lines[how.fd] = []
            text.append(how.line(
                at(started + wall),
                method if method in _METHODS else "-",
                route,
                status,
                "-" if size is None else size,
                int(seconds * 1e6),
                client if client in _seen_clients or _known_client(client) else "-",
                key,
            ))
    for (how, route, status, taken), tally in tallies.items():
        requests, duration, sent = how.series_of(route, status, taken)
        how.counters.add(requests, tally[0])
        if tally[1]:
            how.counters.add(sent, tally[1])
        how.counters.add_histogram(duration, tally[2:])
    for fd, text in lines.items():
        logs.lines(fd).add_all(text)


_seen_clients = set()  # addresses already checked (bounded: see _known_client)


def _known_client(address):
    """True for an IP address (nothing to escape in a log line), remembered."""
    if not address or not _ADDRESS.fullmatch(address):
        return False
    if len(_seen_clients) > 10_000:
        _seen_clients.clear()
    _seen_clients.add(address)
    return True
