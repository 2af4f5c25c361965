"""The Falcon resources of the HTTP routes. Transports never read files:
every answer comes from the in-memory store, through the query layer."""
import contextlib
import hashlib
import json
from pathlib import Path

from typing import NamedTuple

import falcon
from falcon import mediatypes

from ercot_fast import health, timeutil
from ercot_fast.api import encoding, openapi
from ercot_fast.api.deadline import Deadline
from ercot_fast.api.response_cache import PreparedAnswers
from ercot_fast.api.seam import KEY_NAME
from ercot_fast.errors import QueryError, ResponseTooLargeError
from ercot_fast.metrics import exposition
from ercot_fast.query.parse import choice, parse_query
from ercot_fast.render import formats
from ercot_fast.render.arrow import LAYOUTS

JSON = "application/json"
MAX_BODY_BYTES = 1 << 20  # a POST query: room for tens of thousands of names
QUERY_KEYS = ("start_date", "end_date", "hubs", "price_type", "resolution", "tz", "aggregate", "stat", "block")
BODY_KEYS = QUERY_KEYS + ("format", "layout")
_ACCEPTABLE = list(formats.MEDIA_TYPES)  # NOTE: best_match breaks ties by the first: JSON
_COMPRESSED = (formats.JSON, formats.CSV)  # Arrow and Parquet bodies are binary: not compressed
_MIN_CELL_BYTES = 2  # no format writes a price in fewer bytes: the floor of a body's size, before it is made
_MB = 1024 * 1024
_MAX_TAGS = 4096
#: prices an answer may hold and still be made without the time limit's timer (far under a millisecond)
UNTIMED_CELLS = 10_000
_UNTIMED = contextlib.nullcontext()
CACHE_HITS, CACHE_MISSES = ("ercot_fast_response_cache_hits", ()), ("ercot_fast_response_cache_misses", ())
CACHE_HIT_BYTES, CACHE_BYTES = ("ercot_fast_response_cache_hit_bytes", ()), ("ercot_fast_response_cache_bytes", ())
_TOO_LARGE_HINT = "ask for a shorter range, fewer settlement points or an aggregate, or use Arrow Flight for bulk pulls"


def json_bytes(obj):
    return json.dumps(obj, separators=(",", ":")).encode()


class Answer(NamedTuple):
    """A price request, prepared: its checked query, the representation asked
    for, and what every answer to it carries."""

    query: object  # query.parse.PriceQuery
    format: str  # a key of render.formats.FORMATS
    layout: str  # None for JSON
    encoding: str  # a key of api.encoding.CODERS, or None
    etag: str
    cache_key: tuple  # the response cache's
    headers: list  # the ETag and Vary of every answer, a 304 too (and a fixed query's Cache-Control)
    content_headers: list  # the Content-Type (and -Disposition) of a 200
    expires: int  # UTC ms when a relative query must be resolved again; None when fixed


def answer_key(environ):
    """What the answer to a GET depends on besides the loaded data."""
    return environ.get("QUERY_STRING", ""), environ.get("HTTP_ACCEPT"), environ.get("HTTP_ACCEPT_ENCODING")


#: environ key: what the fast path (``api.fastpath``) met answering a GET, for
#: Falcon to answer through its error handlers
FAILED = "ercot_fast.failed"


class PricesResource:
    """GET /api/prices. Bodies are a function of (loaded data, normalised
    query, representation) only, so the ETag is derived from those without
    rendering, and a matching If-None-Match answers 304 at once."""

    def __init__(self, store, max_range_days, max_series, cache, max_age, max_bytes=None, time_limit=None, counters=None):
        self._store = store
        if counters is not None and cache is not None:
            counted = [0, 0, 0]  # hits, misses, hit bytes already added to the counters

            def count_cache():
                now = (cache.hits, cache.misses, cache.hit_bytes)
                for series, value, before in zip((CACHE_HITS, CACHE_MISSES, CACHE_HIT_BYTES), now, counted):
                    counters.add(series, value - before)
                counted[:] = now
                counters.set(CACHE_BYTES, cache.size)

            counters.before_reading(count_cache, "response cache")  # NOTE: replaces the cache's before a reload
        self._max_range_days = max_range_days
        self._max_series = max_series
        self._cache = cache  # ResponseCache or None
        self._max_bytes = max_bytes  # of a body, or None
        self._deadline = Deadline(time_limit)
        self.prepared = PreparedAnswers()
        self.max_age = max_age
        self._fixed_cache_control = self._cache_control(max_age)
        self._tags = {}  # what an ETag digests (all but the range) -> its digest, emptied when full

    def on_get(self, req, resp):
        failed = req.env.get(FAILED)
        if failed is not None:
            raise failed
        key = answer_key(req.env)
        answer = self.prepared.get(key)
        if answer is None:
            answer = self.prepare(req.params, req.get_header("Accept"), req.get_header("Accept-Encoding"))
            self._answer(req, resp, answer)
            self.prepared.remember(key, answer)  # NOTE: once answered: the fast path repeats only answers that can be given
            return
        self._answer(req, resp, answer)

    on_head = on_get  # the GET's headers, no body (Falcon drops it): curl -I, monitors

    def on_post(self, req, resp):
        """The GET's answer for a query in a JSON body (``hubs`` a list): for
        lists of settlement points too long for a URL."""
        params = _json_body(req)
        unknown = [k for k in params if k not in BODY_KEYS]
        if unknown:
            raise QueryError(f"unknown key{'s' if len(unknown) > 1 else ''} in the body: {', '.join(map(str, unknown))}",
                             f"the body takes {', '.join(BODY_KEYS)}")
        self._answer(req, resp, self.prepare(params, req.get_header("Accept"), req.get_header("Accept-Encoding")))

    def prepare(self, params, accept, accept_encoding):
        """The Answer to the query ``params`` (HTTP parameters or a POST's
        body) with these Accept and Accept-Encoding headers (None: absent)."""
        checked = parse_query(params, self._store, self._max_range_days, self._max_series)
        format = _format(params, accept)
        layout = _layout(params, format)
        coding = encoding.negotiate(accept_encoding) if format in _COMPRESSED else None
        etag = f"{self._store.version}-{self._digest(checked, format, layout)}-{checked.start_ms:x}-{checked.end_ms:x}"
        etag = f'"{etag}-{coding}"' if coding else f'"{etag}"'
        content = [("content-type", formats.FORMATS[format].media_type)]
        if format != formats.JSON:
            content.append(("content-disposition", f'attachment; filename="{_file_name(checked, format)}"'))
        headers = [("etag", etag), ("vary", "Accept, Accept-Encoding")]
        expires = checked.changes_at(timeutil.now_ms())
        if expires is None:  # PERF: the whole header list, once
            headers.append(self._fixed_cache_control)
        return Answer(checked, format, layout, coding, etag, (checked, format, layout, coding), headers, content, expires)

    def _digest(self, checked, format, layout):
        """The digest of what an answer is but its range (PERF: a dashboard
        polling new ranges of one query digests it once)."""
        what = (checked[0], checked[3:], format, layout)  # NOTE: PriceQuery's fields but start_ms, end_ms
        digest = self._tags.get(what)
        if digest is None:
            if len(self._tags) >= _MAX_TAGS:
                self._tags.clear()
            digest = self._tags[what] = hashlib.blake2b(repr(what).encode(), digest_size=8).hexdigest()
        return digest

    def _answer(self, req, resp, answer):
        match = req.if_none_match
        if match and (answer.etag.strip('"') in match or match == ["*"]):
            resp.set_headers(self.headers(answer))
            resp.status = falcon.HTTP_304
            return
        headers, body = self.reply(answer)
        resp.set_headers(headers)
        resp.data = body

    def reply(self, answer):
        """(headers, body) of a 200 to ``answer`` (the fast path's too)."""
        body, applied = self.body(answer)
        headers = self.headers(answer) + answer.content_headers
        if applied:
            headers.append(("content-encoding", applied))
        return headers, body

    def headers(self, answer):
        """The caching headers of an answer, a 304 too."""
        if answer.expires is None:
            return answer.headers
        # never reused past the next interval that can change it
        max_age = max(0, min(self.max_age, -(-(answer.expires - timeutil.now_ms()) // 1000)))
        return [*answer.headers, self._cache_control(max_age)]

    @staticmethod
    def _cache_control(max_age):
        return ("cache-control", f"public, max-age={max_age}")

    def body(self, answer):
        """``(body, coding applied or None)``, from the response cache when it
        holds it; a coded body is made from the plain one, once."""
        key = answer.cache_key
        cache = self._cache
        cached = cache.get(key) if cache is not None else None
        if cached is not None:
            return cached
        # PERF: an answer of few prices is made in microseconds: no timer to set and clear
        with self._deadline if answer.query.cells() > UNTIMED_CELLS else _UNTIMED:
            if answer.encoding is None:
                made = (self._render(answer), None)
            else:
                plain, _ = self.body(answer._replace(encoding=None, cache_key=key[:3] + (None,)))
                made = (encoding.CODERS[answer.encoding](plain), answer.encoding) if len(plain) >= encoding.MIN_BYTES else (plain, None)
        if cache is not None:
            cache.put(key, made, len(made[0]))
        return made

    def _render(self, answer):
        """The plain body, refused (413) when over the size limit: at once
        when even its floor is, before it is made."""
        limit = self._max_bytes
        query = answer.query
        if limit is not None and not query.shaped and query.cells() * _MIN_CELL_BYTES > limit:
            raise self._too_large(f"at least {query.cells() * _MIN_CELL_BYTES / _MB:.0f} MB")
        body = formats.render(self._store, query, answer.format, answer.layout)
        if limit is not None and len(body) > limit:
            raise self._too_large(f"{len(body) / _MB:.1f} MB")
        return body

    def _too_large(self, size):
        return ResponseTooLargeError(
            f"the answer would be {size}, over the limit of {self._max_bytes / _MB:g} MB for one HTTP answer", _TOO_LARGE_HINT)


_FORMATS = tuple(formats.FORMATS)


def _format(params, accept):
    value = choice(params, "format", _FORMATS)
    if value is not None:
        return value
    if not accept:
        return formats.JSON
    try:
        best = mediatypes.best_match(_ACCEPTABLE, accept)
    except ValueError:  # a malformed Accept: the default answer
        best = ""
    return formats.MEDIA_TYPES.get(best, formats.JSON)


def _layout(params, format):
    value = choice(params, "layout", LAYOUTS, "use layout=wide or layout=long")
    default = formats.FORMATS[format].default_layout
    if value is None:
        return default
    if default is None:
        raise QueryError("layout is for format=csv, arrow or parquet", "drop layout, or add format=csv")
    return value


def _file_name(query, format):
    """A download's file name: what, when (Central market days), how."""
    first, last = (timeutil.central_date(ms).isoformat() for ms in (query.start_ms, query.end_ms))
    parts = ["ercot", query.price_type, query.resolution if query.price_type == "real_time" else None, first, last,
             query.block, query.aggregate, query.stat]
    return "_".join(p for p in parts if p) + "." + formats.FORMATS[format].extension


def _json_body(req):
    """A POST's JSON object, or QueryError / 413 saying what to send."""
    length = req.content_length
    if length is None and not req.env.get("wsgi.input_terminated"):
        raise falcon.HTTPLengthRequired(title="length required", description="send the JSON body with a Content-Length")
    # a chunked body (the server says where it ends) is read up to one byte past the limit
    if length is None:  # NOTE: Falcon's bounded_stream reads nothing without a length
        raw = req.stream.read(MAX_BODY_BYTES + 1)
    else:
        raw = req.bounded_stream.read(min(length, MAX_BODY_BYTES + 1))
    if len(raw) > MAX_BODY_BYTES:
        raise falcon.HTTPContentTooLarge(
            title="request body too large",
            description=f"the body is over the limit of {MAX_BODY_BYTES} bytes; ask for fewer hubs per request",
        )
    try:
        params = json.loads(raw)
    except (ValueError, UnicodeDecodeError) as exc:
        raise QueryError(f"the body is not JSON ({exc})", _BODY_HINT) from None
    if not isinstance(params, dict):
        raise QueryError(f"the body is a JSON {type(params).__name__}, not an object", _BODY_HINT)
    return params


_BODY_HINT = (
    'send a JSON object with Content-Type: application/json, e.g. {"start_date": "2023-01-01", '
    '"end_date": "2023-01-31", "hubs": ["HB_NORTH", "HB_WEST"], "price_type": "day_ahead"}'
)


class HealthResource:
    def __init__(self, store, problems=(), stale_after=None):
        self._store = store
        self._problems = problems
        self._stale_after = stale_after

    def on_get(self, req, resp):
        _status_answer(resp, *health.check(self._store, self._problems, self._stale_after))

    on_head = on_get


def _status_answer(resp, good, body):
    """A status as JSON, never cached: 503 when not ``good``."""
    if not good:
        resp.status = falcon.HTTP_503
    resp.cache_control = ("no-store",)
    resp.data = json_bytes(body)
    resp.content_type = JSON


class ReadyResource:
    """GET /api/ready: 200 once prices are loaded; 503 with the reason while
    there are none or while the service drains (``draining()`` is True)."""

    def __init__(self, store, draining=None):
        self._store = store
        self._draining = draining or (lambda: False)

    def on_get(self, req, resp):
        _status_answer(resp, *health.readiness(self._store, self._draining()))

    on_head = on_get


class ReloadResource:
    """POST /api/admin/reload: ask the master to load the data directory again
    (as SIGHUP does); 202 at once, the reload runs in the background and
    /metrics and the log tell its outcome. ``request_reload(who)``: None when
    the service has no API keys (the guard admits only callers with a key; an
    open service takes reloads by SIGHUP or --reload-interval only)."""

    REQUESTS = ("ercot_fast_reload_requests", (("protocol", "http"),))

    def __init__(self, request_reload=None, counters=None):
        self._request_reload = request_reload
        self._counters = counters

    def on_post(self, req, resp):
        if self._request_reload is None:
            raise falcon.HTTPForbidden(
                title="reloads over HTTP need API keys",
                description="configure API keys (--api-keys-file or API_KEYS) and send one, or reload with SIGHUP "
                "to the master or --reload-interval",
            )
        self._request_reload(f"HTTP (API key {req.env.get(KEY_NAME, '-')}, {req.remote_addr})")
        if self._counters is not None:
            self._counters.add(self.REQUESTS)
        resp.status = falcon.HTTP_202
        resp.data = json_bytes({"status": "reload requested", "details": "the data directory is loaded again in the "
                                "background; the new data is served when it is published (see /metrics, "
                                "ercot_fast_reloads_total and ercot_fast_store_published_timestamp_seconds)"})
        resp.content_type = JSON
        resp.cache_control = ["no-store"]


class AvailableHubsResource:
    def __init__(self, store):
        self._body = json_bytes(list(store.settlement_points))

    def on_get(self, req, resp):
        resp.data = self._body
        resp.content_type = JSON

    on_head = on_get


class MetricsResource:
    """GET /metrics: every process's metrics added up, and the loaded store's, for Prometheus."""

    def __init__(self, store, counters):
        self._gauges = exposition.store_gauges(store)
        self._counters = counters

    def on_get(self, req, resp):
        counts, gauges, histograms = self._counters.everyone()
        resp.data = exposition.text(counts, {**gauges, **self._gauges}, histograms)
        resp.content_type = exposition.CONTENT_TYPE
        resp.cache_control = ("no-store",)

    on_head = on_get


class OpenApiResource:
    """GET /api/openapi.json: the OpenAPI 3.1 document of the loaded store's API."""

    def __init__(self, store):
        self._body = json_bytes(openapi.document(store.settlement_points))

    def on_get(self, req, resp):
        resp.data = self._body
        resp.content_type = JSON

    on_head = on_get


STATIC = Path(__file__).with_name("static")  # the dashboard's page, script and the vendored chart library


class DashboardResource:
    """GET /: the price dashboard, one page (``static/index.html``) that asks
    the API itself for everything it shows."""

    def __init__(self):
        self._body = (STATIC / "index.html").read_bytes()

    def on_get(self, req, resp):
        resp.data = self._body
        resp.content_type = "text/html; charset=utf-8"
        resp.cache_control = ("no-cache",)

    on_head = on_get


class StreamPointer:
    """GET /api/stream on the HTTP port: the stream has a child of its own
    (``serve.stream``) on ``stream_addr``, so that no subscriber holds an HTTP
    worker. A 307 there, the query string kept: EventSource, fetch and
    ``curl -L`` follow it (a proxy may route /api/stream there instead)."""

    def __init__(self, stream_addr):
        host, _, self._port = stream_addr.rpartition(":")
        host = host.strip("[]")
        self._host = None if host in ("0.0.0.0", "::", "") else host  # NOTE: every address: the one the client used

    def on_get(self, req, resp):
        host = self._host or req.host
        if ":" in host:
            host = f"[{host}]"
        url = f"{req.scheme}://{host}:{self._port}/api/stream" + (f"?{req.query_string}" if req.query_string else "")
        resp.status = falcon.HTTP_307
        resp.location = url
        resp.cache_control = ("no-store",)
        resp.data = json_bytes({"stream": url, "details": "the live-price stream is served on a port of its own: follow "
                                                          "the redirect (EventSource and fetch do; curl -L)"})
        resp.content_type = JSON
