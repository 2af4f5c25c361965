"""The seam's guard (``api.seam``): who is asking, and whether they may ask
now. With API keys configured, a request to a price route carries a key
(``X-API-Key``, or ``Authorization: Bearer``) or is answered 401; health,
readiness, the OpenAPI document, the dashboard page and CORS preflights stay open, and
``/metrics`` is open unless it has a key of its own (``--metrics-key``).
With a rate limit, each key (each client address when keys are off) takes a
token per request from its bucket (``access.limits``), or is answered 429
with ``Retry-After``. Both answers are JSON that says what to do.

The name of the key that was accepted is left in ``environ[KEY_NAME]`` for
the access log.
"""
import hmac

from ercot_fast.access.keys import SEND_IT, presented
from ercot_fast.api.resources import JSON, json_bytes
from ercot_fast.api.seam import KEY_NAME
# the dashboard page and its files are open too: the page asks for the key
OPEN_ROUTES = frozenset(("/api/health", "/api/ready", "/api/openapi.json", "/"))
OPEN_PREFIX = "/static/"
METRICS_ROUTE = "/metrics"


RATE_LIMITED = ("ercot_fast_rate_limited", (("protocol", "http"),))


def layer(keys, limit=None, metrics_key=None, counters=None):
    """The guard over ``keys`` (``access.keys.ApiKeys``), ``limit``
    (``access.limits.RateLimit`` or None) and ``metrics_key`` (None: open);
    refusals by the rate limit are counted in ``counters`` (if given).
    Nothing to guard (no keys, no limit, no metrics key): no layer at all
    (PERF: the default's hot path; new keys on SIGHUP rebuild the app)."""
    if not keys.enabled and limit is None and metrics_key is None:
        return lambda app: app

    def wrap(app):
        def guarded(environ, start_response):
            path = environ.get("PATH_INFO")
            if path in OPEN_ROUTES or path.startswith(OPEN_PREFIX) or _preflight(environ):
                return app(environ, start_response)
            key = presented(environ.get("HTTP_X_API_KEY"), environ.get("HTTP_AUTHORIZATION"))
            if path == METRICS_ROUTE:
                if metrics_key is not None and not (key and hmac.compare_digest(key.encode(), metrics_key.encode())):
                    return _json(start_response, *_unauthorized(key, "/metrics needs the metrics key (--metrics-key)"))
                return app(environ, start_response)
            refusal, who = check(keys, limit, key, environ.get("REMOTE_ADDR"), counters)
            if refusal is not None:
                return _json(start_response, *refusal)
            if who is not None:
                environ[KEY_NAME] = who
            return app(environ, start_response)

        return guarded

    return wrap


def _preflight(environ):
    return environ["REQUEST_METHOD"] == "OPTIONS" and "HTTP_ACCESS_CONTROL_REQUEST_METHOD" in environ


def check(keys, limit, key, address, counters=None):
    """``(refusal, who)`` of a request to a price route carrying ``key`` (or
    None) from ``address``: ``who`` the name of the key accepted (None without
    keys); ``refusal`` None when it may go on, else ``(status, error, details,
    headers)`` of its JSON answer (401, 429). The stream's child asks it too."""
    who = None
    if keys.enabled:
        who = keys.identify(key)
        if who is None:
            return _unauthorized(key, "this service needs an API key"), None
    if limit is not None:
        wait = limit.take(who or f"addr:{address}")
        if wait:
            if counters is not None:
                counters.add(RATE_LIMITED)
            return _too_many(limit, wait), who
    return None, who


def _unauthorized(key, what):
    error = "API key not accepted" if key else "API key required"
    details = f"{what}: the key sent is not one of them; check it, or ask for one" if key else f"{what}: {SEND_IT}"
    return "401 Unauthorized", error, details, [("www-authenticate", 'Bearer realm="ercot-fast"')]


def _too_many(limit, wait):
    seconds = limit.retry_after(wait)
    details = f"the limit is {limit.describe()} per API key (or client address); retry in {seconds} s"
    return "429 Too Many Requests", "rate limit exceeded", details, [("retry-after", str(seconds))]


def _json(start_response, status, error, details, headers):
    body = json_bytes({"error": error, "details": details})
    start_response(status, [("content-type", JSON), ("content-length", str(len(body))), ("cache-control", "no-store"), *headers])
    return [body]
