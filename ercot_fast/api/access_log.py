"""The access log: one line per HTTP request, whichever path answered it (a
layer of the seam, ``api.seam``). PERF: lines are gathered per process and
written a few KB at a time (whole lines, under the 4 KB a pipe writes at
once, so the lines of several workers never interleave), at the latest a
quarter of a second after a request; a process killed with SIGKILL loses at
most that quarter second of lines.

Fields: the time the request arrived (UTC, ms), method, route (``-`` for a
path that is no route: a raw path is never logged), status, body bytes,
microseconds spent answering, the client address and the API key's name
(``-`` without one). Text::

    2026-12-02T00:30:01.123Z GET /api/prices 200 5912 41us 127.0.0.1 desk-a

or JSON (``--log-format json``), one object per line::

    {"time": "2026-12-02T00:30:01.123Z", "method": "GET", "route": "/api/prices", "status": 200,
     "bytes": 5912, "microseconds": 41, "client": "127.0.0.1", "api_key": "desk-a"}
"""
import atexit
import os
import re
import threading
import time

from ercot_fast import logs
from ercot_fast.api.seam import KEY_NAME

_METHODS = frozenset(("GET", "HEAD", "POST", "OPTIONS", "PUT", "DELETE", "PATCH"))
_ADDRESS = re.compile(r"[0-9A-Fa-f:.]{1,45}")  # IPv4 or IPv6: nothing to escape in a log line


def layer(routes, log_format=logs.TEXT, fd=2):
    """The seam layer writing the access log of ``routes`` (other paths log as
    ``-``) to the file descriptor ``fd`` (stderr)."""
    routes = frozenset(routes)
    line = logs.access_line(log_format)
    clock = logs.Clock()

    def wrap(app):
        perf_counter = time.perf_counter

        def logged(environ, start_response):
            started = perf_counter()
            answered = []

            def start(status, headers, exc_info=None):
                answered.append(status)
                return start_response(status, headers, exc_info)

            body = app(environ, start)
            # PERF: every answer of ours is a list of bytes: its length is what is sent (0 for HEAD)
            size = sum(map(len, body)) if type(body) is list else "-"
            path = environ.get("PATH_INFO")
            method = environ.get("REQUEST_METHOD")
            client = environ.get("REMOTE_ADDR")
            _buffer(fd).add(line(
                clock.text(),
                method if method in _METHODS else "-",
                path if path in routes else "-",
                answered[-1][:3] if answered else "500",
                size,
                int((perf_counter() - started) * 1e6),
                client if client in _seen_clients or _known_client(client) else "-",
                environ.get(KEY_NAME, "-"),
            ))
            return body

        return logged

    return wrap


_seen_clients = set()  # addresses already checked (bounded: see _known_client)


def _known_client(address):
    """True for an IP address (nothing to escape in a log line), remembered."""
    if not address or not _ADDRESS.fullmatch(address):
        return False
    if len(_seen_clients) > 10_000:
        _seen_clients.clear()
    _seen_clients.add(address)
    return True


FLUSH_BYTES = 3584  # written once this much gathers: a line more stays under PIPE_BUF (4096)
FLUSH_SECONDS = 0.25
_BUFFERS = {}  # (pid, fd) -> _Buffer: one per process (workers fork) and descriptor


def flush():
    """Write every line this process has gathered."""
    for (pid, _), buffer in list(_BUFFERS.items()):
        if pid == os.getpid():
            buffer.flush()


def _buffer(fd):
    buffer = _BUFFERS.get((_pid(), fd))
    if buffer is None:
        buffer = _BUFFERS[_pid(), fd] = _Buffer(fd)
    return buffer


_pid = os.getpid  # NOTE: a forked worker has its own pid, hence its own buffer and thread


class _Buffer:
    """Lines gathered for one descriptor, written by size, by age (a daemon
    thread) and at exit."""

    def __init__(self, fd):
        self._fd = fd
        self._lines = []
        self._size = 0
        self._lock = threading.Lock()
        threading.Thread(target=self._flush_now_and_then, name="access-log", daemon=True).start()
        atexit.register(self.flush)

    def add(self, line):
        with self._lock:
            self._lines.append(line)
            self._size += len(line)
            if self._size >= FLUSH_BYTES:
                self._write()

    def flush(self):
        with self._lock:
            self._write()

    def _write(self):
        if self._lines:
            text, self._lines, self._size = "".join(self._lines), [], 0
            try:
                os.write(self._fd, text.encode())
            except OSError:  # a closed log: lose the lines, never the request
                pass

    def _flush_now_and_then(self):
        while True:
            time.sleep(FLUSH_SECONDS)
            self.flush()
