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
from ercot_fast.response_cache import ParsedQueries, ResponseCache

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
        self.parsed = ParsedQueries()
        self.cache_control = f"public, max-age={max_age}"

    def on_get(self, req, resp):
        parsed = self.parsed.get(req.query_string)
        if parsed is None:
            checked = query.parse_query(req.params, self._store, self._max_range_days)
            parsed = (checked, self._etag(checked))
            self.parsed.remember(req.query_string, parsed)
        checked, etag = parsed
        resp.cache_control = (self.cache_control,)
        resp.etag = etag
        match = req.if_none_match
        if match and (etag in match or match == ["*"]):
            resp.status = falcon.HTTP_304
            return
        resp.content_type = JSON
        resp.data = self.body(checked)

    def body(self, checked):
        """The rendered answer, from the response cache when it holds it."""
        cache = self._cache
        if cache is None:
            return query.render_json(self._store, checked)
        body = cache.get(checked)
        if body is None:
            body = query.render_json(self._store, checked)
            cache.put(checked, body)
        return body

    def _etag(self, checked):
        price_type, start_ms, end_ms, series, resolution, tz = checked
        key = f"{price_type}|{start_ms}|{end_ms}|{','.join(series)}|{resolution}|{tz}"
        return f"{self._store.version}-{hashlib.blake2b(key.encode(), digest_size=8).hexdigest()}"


class PollFastPath:
    """The WSGI app in front of Falcon for the hottest request there is: a
    dashboard's repeated, unconditional GET /api/prices. A query string the
    resource has already parsed is answered here with the same status,
    headers and body the Falcon resource gives it, without building Falcon's
    request and response objects. Everything else (new queries, errors,
    If-None-Match, other routes and methods) goes to the Falcon app."""

    def __init__(self, app, prices):
        self._app = app
        self._prices = prices

    def __call__(self, environ, start_response):
        if (
            environ.get("PATH_INFO") == "/api/prices"
            and environ["REQUEST_METHOD"] == "GET"
            and "HTTP_IF_NONE_MATCH" not in environ
        ):
            parsed = self._prices.parsed.get(environ.get("QUERY_STRING", ""))
            if parsed is not None:
                checked, etag = parsed
                body = self._prices.body(checked)
                headers = [
                    ("cache-control", self._prices.cache_control),
                    ("etag", f'"{etag}"'),
                    ("content-type", JSON),
                    ("content-length", str(len(body))),
                ]
                if "HTTP_ORIGIN" in environ:  # as falcon's CORS middleware answers
                    headers.append(("access-control-allow-origin", "*"))
                start_response("200 OK", headers)
                return [body]
        return self._app(environ, start_response)


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
    """The WSGI app over ``store`` (already loaded: the app never reads files):
    the Falcon app behind PollFastPath.

    ``cache_mb``: per-worker response cache size (0 turns it off);
    ``max_age``: seconds a client or proxy may reuse a price answer unrevalidated.
    """
    app = falcon.App(cors_enable=True)
    app.req_options.auto_parse_qs_csv = False  # hubs=A,B stays one string: query.py splits it
    cache = ResponseCache(cache_mb * 1024 * 1024) if cache_mb > 0 else None
    prices = PricesResource(store, max_range_days, cache, max_age)
    app.add_route("/api/prices", prices)
    app.add_route("/api/health", HealthResource(store))
    app.add_route("/api/available_hubs", AvailableHubsResource(store))
    app.set_error_serializer(_serialize_error)
    app.add_error_handler(Exception, _internal_error)
    app.add_error_handler(QueryError, _bad_request)
    app.add_error_handler(falcon.HTTPRouteNotFound, _not_found)
    app.add_error_handler(falcon.HTTPMethodNotAllowed, _method_not_allowed)
    return PollFastPath(app, prices)
