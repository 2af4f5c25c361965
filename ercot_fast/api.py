"""The HTTP JSON API (API.md): a Falcon WSGI app over the query layer.

Transports never read files: every answer comes from the in-memory store.
"""
import datetime as dt
import hashlib
import json
import logging

import falcon

from ercot_fast import query
from ercot_fast.errors import QueryError
from ercot_fast.response_cache import ResponseCache

log = logging.getLogger(__name__)

JSON = "application/json"
ROUTES = ("/api/prices", "/api/health", "/api/available_hubs")
SYNTHETIC_LABEL = "synthetic demo data, not real ERCOT prices"


def _json_bytes(obj):
    return json.dumps(obj, separators=(",", ":")).encode()


class PricesResource:
    """GET /api/prices. Bodies are a function of (loaded data, normalised
    query) only, so the ETag is derived from those two without rendering,
    and a matching If-None-Match answers 304 at once."""

    def __init__(self, store, max_range_days, cache, max_age):
        self._store = store
        self._max_range_days = max_range_days
        self._cache = cache  # ResponseCache or None
        self._cache_control = (f"public, max-age={max_age}",)

    def on_get(self, req, resp):
        cache = self._cache
        raw = req.query_string
        entry = cache.get(raw) if cache is not None else None
        if entry is None:
            checked = query.parse_query(req.params, self._store, self._max_range_days)
            entry = cache.find(raw, checked) if cache is not None else None
            if entry is None:
                etag = self._etag(checked)
                if self._not_modified(req, resp, etag):
                    return
                body = query.render_json(self._store, checked)
                if cache is not None:
                    cache.put(raw, checked, etag, body)
                entry = (etag, body)
        etag, body = entry
        if self._not_modified(req, resp, etag):
            return
        resp.cache_control = self._cache_control
        resp.etag = etag
        resp.content_type = JSON
        resp.data = body

    def _not_modified(self, req, resp, etag):
        match = req.if_none_match
        if match and (etag in match or match == ["*"]):
            resp.status = falcon.HTTP_304
            resp.etag = etag
            resp.cache_control = self._cache_control
            return True
        return False

    def _etag(self, checked):
        price_type, start_ms, end_ms, series, resolution, tz = checked
        key = f"{price_type}|{start_ms}|{end_ms}|{','.join(series)}|{resolution}|{tz}"
        return f"{self._store.version}-{hashlib.blake2b(key.encode(), digest_size=8).hexdigest()}"


class HealthResource:
    def __init__(self, store):
        self._store = store

    def on_get(self, req, resp):
        body = {
            "status": "healthy",
            "service": "ercot_price_service",
            "timestamp": dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
        }
        if self._store.total_rows == 0:
            body["status"] = "no_data"
            body["details"] = f"no prices were loaded from {self._store.data_dir}; see the service log"
            resp.status = falcon.HTTP_503
        if self._store.synthetic:
            body["data"] = SYNTHETIC_LABEL
        resp.cache_control = ("no-store",)
        resp.data = _json_bytes(body)
        resp.content_type = JSON


class AvailableHubsResource:
    def __init__(self, store):
        self._body = _json_bytes(list(store.settlement_points))

    def on_get(self, req, resp):
        resp.data = self._body
        resp.content_type = JSON


def _serialize_error(req, resp, exc):
    """Every error body is {"error": ..., "details": ...} (API.md)."""
    resp.data = _json_bytes({"error": exc.title, "details": exc.description or ""})
    resp.content_type = JSON


def _bad_request(req, resp, exc, params):
    raise falcon.HTTPBadRequest(title=exc.message, description=exc.details)


def _not_found(req, resp, exc, params):
    raise falcon.HTTPNotFound(title="not found", description=f"{req.path} is not a route; use one of {', '.join(ROUTES)}")


def _method_not_allowed(req, resp, exc, params):
    raise falcon.HTTPMethodNotAllowed(
        exc.headers["Allow"].split(", "),
        title="method not allowed",
        description=f"{req.method} is not supported on {req.path}; use GET",
    )


def _internal_error(req, resp, exc, params):
    log.exception("internal error answering %s %s", req.method, req.relative_uri)
    raise falcon.HTTPInternalServerError(title="internal server error", description="the fault is logged on the server")


DEFAULT_CACHE_MB = 64
DEFAULT_MAX_AGE = 60


def create_app(store, max_range_days=query.DEFAULT_MAX_RANGE_DAYS, cache_mb=DEFAULT_CACHE_MB, max_age=DEFAULT_MAX_AGE):
    """The WSGI app over ``store`` (already loaded: the app never reads files).

    ``cache_mb``: per-worker response cache size (0 turns it off);
    ``max_age``: seconds a client or proxy may reuse a price answer unrevalidated.
    """
    app = falcon.App(cors_enable=True)
    app.req_options.auto_parse_qs_csv = False  # hubs=A,B stays one string: query.py splits it
    cache = ResponseCache(cache_mb * 1024 * 1024) if cache_mb > 0 else None
    app.add_route("/api/prices", PricesResource(store, max_range_days, cache, max_age))
    app.add_route("/api/health", HealthResource(store))
    app.add_route("/api/available_hubs", AvailableHubsResource(store))
    app.set_error_serializer(_serialize_error)
    app.add_error_handler(Exception, _internal_error)
    app.add_error_handler(QueryError, _bad_request)
    app.add_error_handler(falcon.HTTPRouteNotFound, _not_found)
    app.add_error_handler(falcon.HTTPMethodNotAllowed, _method_not_allowed)
    return app
