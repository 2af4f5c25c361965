"""Logging for every command: lines on stderr, as text or as one JSON object
per line (``--log-format json``, for log collectors); and the access log's
line, the same for HTTP requests and Flight calls, and its buffer
(``lines``). Imports nothing of ours.

PERF: access log lines are gathered per process and written a few KB at a
time (whole lines, under the 4 KB a pipe writes at once, so the lines of
several processes never interleave), at the latest a quarter of a second
after they were made; a process killed with SIGKILL loses at most that
quarter second of lines.
"""
import atexit
import json
import logging
import os
import sys
import threading
import time

TEXT = "text"
JSON = "json"
FORMATS = (TEXT, JSON)
_TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
#: the format chosen by ``setup`` (gunicorn's own logger follows it)
chosen = TEXT


class JsonFormatter(logging.Formatter):
    """{"time": ..., "level": ..., "logger": ..., "message": ...} (and "exception")."""

    def format(self, record):
        when = f"{_second_text(int(record.created))}.{int(record.msecs):03d}Z"
        entry = {"time": when, "level": record.levelname, "logger": record.name, "message": record.getMessage()}
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return json.dumps(entry)


def formatter(log_format=None):
    return JsonFormatter() if (log_format or chosen) == JSON else logging.Formatter(_TEXT_FORMAT)


def setup(level, log_format=TEXT):
    """Log ``level`` and above to stderr in ``log_format`` (text or json)."""
    global chosen
    chosen = log_format
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(formatter(log_format))
    logging.basicConfig(level=getattr(logging, level.upper(), logging.INFO), handlers=[handler], force=True)


# --- the access log's line ---------------------------------------------------------------------


def access_line(log_format):
    """``line(when, method, route, status, size, microseconds, client, key)``
    -> the access log's line (with its newline) in ``log_format``; ``key``:
    the API key's name, or ``-``."""
    return _json_access if log_format == JSON else _text_access


def _text_access(when, method, route, status, size, microseconds, client, key):
    return f"{when} {method} {route} {status} {size} {microseconds}us {client} {key}\n"


def _json_access(when, method, route, status, size, microseconds, client, key):
    # PERF: written by hand, not json.dumps: every field is a number or a word
    # the callers vouch for (a known method and route, a status, an address)
    status = status if status.isdigit() else f'"{status}"'
    size = size if isinstance(size, int) or str(size).isdigit() else f'"{size}"'
    return (f'{{"time": "{when}", "method": "{method}", "route": "{route}", "status": {status}, "bytes": {size}, '
            f'"microseconds": {microseconds}, "client": "{client}", "api_key": {_json_key(key)}}}\n')


def _json_key(key):
    return "null" if key == "-" else f'"{key}"'


class Clock:
    """RFC 3339 UTC text of now, to the ms; the date and time part made once
    a second, the whole text once a millisecond (PERF: a busy worker answers
    several requests a millisecond)."""

    def __init__(self):
        self._second = None
        self._prefix = ""
        self._ms = None
        self._text = ""

    def text(self):
        return self.at(time.time())

    def at(self, now):
        """The text of ``now`` (epoch seconds)."""
        ms = int(now * 1000)
        if ms != self._ms:
            second = ms // 1000
            if second != self._second:
                self._second = second
                self._prefix = _second_text(second)
            self._ms = ms
            self._text = f"{self._prefix}.{ms % 1000:03d}Z"
        return self._text


def _second_text(second):
    """RFC 3339 UTC text of a whole second, without its zone: 2026-12-02T00:30:01."""
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(second))


# --- the access log's buffer ----------------------------------------------------------------

FLUSH_BYTES = 3584  # written once this much gathers: a line more stays under PIPE_BUF (4096)
FLUSH_SECONDS = 0.25
_BUFFERS = {}  # (pid, fd) -> _Buffer: one per process (workers fork) and descriptor


def flush_lines():
    """Write every access log line this process has gathered."""
    for (pid, _), buffer in list(_BUFFERS.items()):
        if pid == os.getpid():
            buffer.flush()


def lines(fd=2):
    """This process's buffer of lines for the descriptor ``fd`` (``.add(line)``)."""
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
        self.add_all((line,))

    def add_all(self, lines):
        with self._lock:
            for line in lines:
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
