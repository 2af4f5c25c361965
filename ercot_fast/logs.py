"""Logging for every command: lines on stderr, as text or as one JSON object
per line (``--log-format json``, for log collectors); and the access log's
line, the same for HTTP requests and Flight calls. Imports nothing of ours."""
import json
import logging
import sys
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
    """RFC 3339 UTC text of now, to the ms; the date and time part made once a second."""

    def __init__(self):
        self._second = None
        self._prefix = ""

    def text(self):
        now = time.time()
        second = int(now)
        if second != self._second:
            self._second = second
            self._prefix = _second_text(second)
        return f"{self._prefix}.{int((now - second) * 1000):03d}Z"


def _second_text(second):
    """RFC 3339 UTC text of a whole second, without its zone: 2026-12-02T00:30:01."""
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(second))
