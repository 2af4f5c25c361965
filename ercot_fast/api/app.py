"""Assemble the HTTP API over a loaded store: the Falcon app and its error
handling, the polling fast path in front of it, and the seam around both."""
import gc
import logging

import falcon

from ercot_fast import errors
from ercot_fast.api import seam
from ercot_fast.api.fastpath import PollFastPath
from ercot_fast.api.resources import (
    JSON,
    STATIC,
    AvailableHubsResource,
    DashboardResource,
    HealthResource,
    MetricsResource,
    OpenApiResource,
    PricesResource,
    ReadyResource,
    ReloadResource,
    StreamPointer,
    json_bytes,
)
from ercot_fast.api.response_cache import ResponseCache
from ercot_fast.metrics.counters import Counters
from ercot_fast.config import (
    DEFAULT_CACHE_MB,
    DEFAULT_MAX_AGE,
    DEFAULT_MAX_RANGE_DAYS,
    DEFAULT_MAX_RESPONSE_MB,
    DEFAULT_MAX_SERIES,
    DEFAULT_REQUEST_TIMEOUT,
    DEFAULT_STREAM_ADDR,
)

log = logging.getLogger(__name__)

ROUTES = ("/", "/api/prices", "/api/stream", "/api/health", "/api/ready", "/api/available_hubs", "/api/openapi.json",
          "/metrics", "/api/admin/reload")
# what a query error is about -> where an HTTP client finds what to change
HINTS = {
    errors.SETTLEMENT_POINTS: "see /api/available_hubs",
    errors.TOO_LARGE: "or use Arrow Flight for bulk pulls",
}


def create_app(
    store,
    max_range_days=DEFAULT_MAX_RANGE_DAYS,
    cache_mb=DEFAULT_CACHE_MB,
    max_age=DEFAULT_MAX_AGE,
    layers=(),
    max_series=DEFAULT_MAX_SERIES,
    problems=(),
    stale_after=None,
    max_response_mb=DEFAULT_MAX_RESPONSE_MB,
    request_timeout=DEFAULT_REQUEST_TIMEOUT,
    counters=None,
    draining=None,
    request_reload=None,
    stream_addr=DEFAULT_STREAM_ADDR,
):
    """The WSGI app over ``store`` (already loaded: the app never reads files).

    ``cache_mb``: per-worker response cache size (0 turns it off);
    ``max_age``: seconds a client or proxy may reuse a price answer unrevalidated;
    ``layers``: WSGI layers of the seam, outermost first, after CORS;
    ``problems``, ``stale_after``: what health reports (``health.check``);
    ``max_response_mb``: largest body (413 over it); ``request_timeout``:
    seconds an answer may compute (503 past it; only in the main thread);
    ``counters``: the process's ``metrics.counters.Counters`` (None: this
    app's own, in memory), which /metrics adds up with the other processes'.
    ``draining``: a function, True while the service drains (``/api/ready`` 503).
    ``request_reload(who)``: asks the master for a reload (``POST
    /api/admin/reload``); None: refused (no API keys, or no master).
    ``stream_addr``: where the live-price stream serves (``/api/stream`` redirects there).
    """
    counters = counters if counters is not None else Counters()
    app = falcon.App()
    app.req_options.auto_parse_qs_csv = False  # hubs=A,B stays one string: the query layer splits it
    cache = ResponseCache(cache_mb * 1024 * 1024) if cache_mb > 0 else None
    prices = PricesResource(store, max_range_days, max_series, cache, max_age, max_response_mb * 1024 * 1024, request_timeout,
                            counters)
    app.add_route("/api/prices", prices)
    app.add_route("/api/health", HealthResource(store, problems, stale_after))
    app.add_route("/api/ready", ReadyResource(store, draining))
    app.add_route("/api/available_hubs", AvailableHubsResource(store))
    app.add_route("/api/openapi.json", OpenApiResource(store))
    app.add_route("/metrics", MetricsResource(store, counters))
    app.add_route("/api/admin/reload", ReloadResource(request_reload, counters))
    app.add_route("/", DashboardResource())
    app.add_route("/api/stream", StreamPointer(stream_addr))
    app.add_static_route("/static", str(STATIC))
    app.set_error_serializer(_serialize_error)
    app.add_error_handler(Exception, _internal_error)
    app.add_error_handler(errors.QueryError, _bad_request)
    app.add_error_handler(errors.ResponseTooLargeError, _too_large)
    app.add_error_handler(errors.RequestTimeoutError, _timed_out)
    app.add_error_handler(falcon.HTTPRouteNotFound, _not_found)
    app.add_error_handler(falcon.HTTPMethodNotAllowed, _method_not_allowed)
    return seam.compose(PollFastPath(app, prices), [seam.cors, *layers])


class LiveApp:
    """A worker's WSGI entry: the app over the store the master publishes
    (``store.shared``), rebuilt over the new one when the master publishes
    again, between two requests. ``build(follower)`` makes the app of what
    the follower holds (store, problems, API keys)."""

    def __init__(self, follower, build):
        self._follower = follower
        self._build = build
        self._app = build(follower)

    def __call__(self, environ, start_response):
        if self._follower.changed():
            self.follow()
        return self._app(environ, start_response)

    def follow(self):
        """Swap to what the master published last, if anything."""
        if self._follower.refresh():
            self._app = self._build(self._follower)
            # NOTE: the old app is cyclic garbage holding the old store's
            # mapping: free it now, not at some later full collection
            gc.collect()


def _serialize_error(req, resp, exc):
    """Every error body is {"error": ..., "details": ...} (API.md)."""
    resp.data = json_bytes({"error": exc.title, "details": exc.description or ""})
    resp.content_type = JSON


def _bad_request(req, resp, exc, params):
    hint = HINTS.get(exc.about)
    details = f"{exc.details}; {hint}" if hint else exc.details
    raise falcon.HTTPBadRequest(title=exc.message, description=details)


def _too_large(req, resp, exc, params):
    raise falcon.HTTPContentTooLarge(title=exc.message, description=exc.details)


def _timed_out(req, resp, exc, params):
    log.warning("request stopped at the time limit: %s %s", req.method, req.relative_uri)
    raise falcon.HTTPServiceUnavailable(title=exc.message, description=exc.details)


def _not_found(req, resp, exc, params):
    raise falcon.HTTPNotFound(title="not found", description=f"{req.path} is not a route; use one of {', '.join(ROUTES)}")


def _method_not_allowed(req, resp, exc, params):
    raise falcon.HTTPMethodNotAllowed(
        exc.headers["Allow"].split(", "),
        title="method not allowed",
        description=f"{req.method} is not supported on {req.path}; use {_methods(exc.headers['Allow'])}",
    )


def _methods(allow):
    """The methods to name in a 405: those a client means (not HEAD, OPTIONS)."""
    return ", ".join(m for m in allow.split(", ") if m not in ("HEAD", "OPTIONS"))


def _internal_error(req, resp, exc, params):
    log.exception("internal error answering %s %s", req.method, req.relative_uri)
    raise falcon.HTTPInternalServerError(title="internal server error", description="the fault is logged on the server")
