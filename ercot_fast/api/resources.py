"""The Falcon resources of the HTTP routes. Transports never read files:
every answer comes from the in-memory store, through the query layer."""
import hashlib
import json

import falcon

from ercot_fast import health
from ercot_fast.api.response_cache import ParsedQueries
from ercot_fast.query.parse import parse_query
from ercot_fast.render import json as json_render

JSON = "application/json"


def json_bytes(obj):
    return json.dumps(obj, separators=(",", ":")).encode()


class PricesResource:
    """GET /api/prices. Bodies are a function of (loaded data, normalised
    query) only, so the ETag is derived from those two without rendering,
    and a matching If-None-Match answers 304 at once."""

    def __init__(self, store, max_range_days, cache, max_age):
        self._store = store
        self._max_range_days = max_range_days
        self._cache = cache  # ResponseCache or None
        self.parsed = ParsedQueries()
        self.cache_control = f"public, max-age={max_age}"

    def on_get(self, req, resp):
        parsed = self.parsed.get(req.query_string)
        if parsed is None:
            checked = parse_query(req.params, self._store, self._max_range_days)
            parsed = (checked, self._etag(checked))
            self.parsed.remember(req.query_string, parsed)
        checked, etag = parsed
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


class HealthResource:
    def __init__(self, store):
        self._store = store

    def on_get(self, req, resp):
        serving, body = health.check(self._store)
        if not serving:
            resp.status = falcon.HTTP_503
        resp.cache_control = ("no-store",)
        resp.data = json_bytes(body)
        resp.content_type = JSON


class AvailableHubsResource:
    def __init__(self, store):
        self._body = json_bytes(list(store.settlement_points))

    def on_get(self, req, resp):
        resp.data = self._body
        resp.content_type = JSON
