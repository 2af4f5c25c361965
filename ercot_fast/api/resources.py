"""The Falcon resources of the HTTP routes. Transports never read files:
every answer comes from the in-memory store, through the query layer."""
import hashlib
import json

import falcon

from ercot_fast import health
from ercot_fast.api.response_cache import ParsedQueries
from ercot_fast.errors import QueryError
from ercot_fast.query.parse import parse_query
from ercot_fast.render import json as json_render

JSON = "application/json"
MAX_BODY_BYTES = 1 << 20  # a POST query: room for tens of thousands of names
BODY_KEYS = ("start_date", "end_date", "hubs", "price_type", "resolution", "tz")


def json_bytes(obj):
    return json.dumps(obj, separators=(",", ":")).encode()


class PricesResource:
    """GET /api/prices. Bodies are a function of (loaded data, normalised
    query) only, so the ETag is derived from those two without rendering,
    and a matching If-None-Match answers 304 at once."""

    def __init__(self, store, max_range_days, max_series, cache, max_age):
        self._store = store
        self._max_range_days = max_range_days
        self._max_series = max_series
        self._cache = cache  # ResponseCache or None
        self.parsed = ParsedQueries()
        self.cache_control = f"public, max-age={max_age}"

    def on_get(self, req, resp):
        parsed = self.parsed.get(req.query_string)
        if parsed is None:
            checked = parse_query(req.params, self._store, self._max_range_days, self._max_series)
            parsed = (checked, self._etag(checked))
            self.parsed.remember(req.query_string, parsed)
        self._answer(req, resp, *parsed)

    on_head = on_get  # the GET's headers, no body (Falcon drops it): curl -I, monitors

    def on_post(self, req, resp):
        """The GET's answer for a query in a JSON body (``hubs`` a list): for
        lists of settlement points too long for a URL."""
        params = _json_body(req)
        unknown = [k for k in params if k not in BODY_KEYS]
        if unknown:
            raise QueryError(f"unknown key{'s' if len(unknown) > 1 else ''} in the body: {', '.join(map(str, unknown))}",
                             f"the body takes {', '.join(BODY_KEYS)}")
        checked = parse_query(params, self._store, self._max_range_days, self._max_series)
        self._answer(req, resp, checked, self._etag(checked))

    def _answer(self, req, resp, checked, etag):
        resp.set_headers(self.headers(etag))
        match = req.if_none_match
        if match and (etag in match or match == ["*"]):
            resp.status = falcon.HTTP_304
            return
        resp.content_type = JSON
        resp.data = self.body(checked)

    def headers(self, etag):
        """The caching headers of every price answer (the fast path's too)."""
        return [("cache-control", self.cache_control), ("etag", f'"{etag}"')]

    def body(self, checked):
        """The rendered answer, from the response cache when it holds it."""
        cache = self._cache
        if cache is None:
            return json_render.render_json(self._store, checked)
        body = cache.get(checked)
        if body is None:
            body = json_render.render_json(self._store, checked)
            cache.put(checked, body)
        return body

    def _etag(self, checked):
        price_type, start_ms, end_ms, series, resolution, tz = checked
        key = f"{price_type}|{start_ms}|{end_ms}|{','.join(series)}|{resolution}|{tz}"
        return f"{self._store.version}-{hashlib.blake2b(key.encode(), digest_size=8).hexdigest()}"


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
        serving, body = health.check(self._store, self._problems, self._stale_after)
        if not serving:
            resp.status = falcon.HTTP_503
        resp.cache_control = ("no-store",)
        resp.data = json_bytes(body)
        resp.content_type = JSON

    on_head = on_get


class AvailableHubsResource:
    def __init__(self, store):
        self._body = json_bytes(list(store.settlement_points))

    def on_get(self, req, resp):
        resp.data = self._body
        resp.content_type = JSON

    on_head = on_get
