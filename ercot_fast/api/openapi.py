"""The OpenAPI 3.1 document of the HTTP API (``GET /api/openapi.json``), built
from the same constants the query layer and the resources check against, so
that it cannot drift from them: every route, parameter, body, response and
error shape. The settlement points it lists are those of the loaded store."""
from ercot_fast import __version__, datasets, health
from ercot_fast.api import encoding, events
from ercot_fast.query import parse
from ercot_fast.render import arrow, formats

_ERROR = {"$ref": "#/components/schemas/Error"}
_JSON_ERROR = {"application/json": {"schema": _ERROR}}
#: what every guarded route may answer (API keys, the rate limit: api.guard)
_GUARD_RESPONSES = {
    "401": {"description": "API keys are required and none (or a wrong one) was sent: X-API-Key or Authorization: Bearer.",
            "headers": {"WWW-Authenticate": {"schema": {"type": "string"}}}, "content": _JSON_ERROR},
    "429": {"description": "Over the rate limit of the API key (or client address): retry after Retry-After seconds.",
            "headers": {"Retry-After": {"schema": {"type": "integer"}}}, "content": _JSON_ERROR},
}
#: with API keys configured, one of these (without: none)
_SECURITY = [{}, {"apiKey": []}, {"bearer": []}]
_DATE_FORMS = (
    "A bare date (`2023-01-01`: the Central market day, its first instant for `start_date`, its last for "
    "`end_date`), RFC 3339 with an offset (`2023-01-01T06:00:00Z`, `2023-01-01T00:00:00.000Z`, "
    "`2023-01-01T00:00:00-06:00`), epoch milliseconds (`1672552800000`, Grafana's `${__from}`), `now`, "
    "`now-24h`, `now-7d`, `now+1h`, `now-1M` (units s m h d w M y), `today` or `yesterday`. Both ends are inclusive."
)


def _query_parameters(settlement_points):
    def parameter(name, description, schema, required=False, example=None, **extra):
        spec = {"name": name, "in": "query", "required": required, "description": description, "schema": schema, **extra}
        if example is not None:
            spec["example"] = example
        return spec

    names = sorted(set(settlement_points) | set(datasets.AS_PRODUCTS))
    return [
        parameter("start_date", _DATE_FORMS, {"type": "string", "minLength": 1}, True, "2021-02-17"),
        parameter("end_date", _DATE_FORMS, {"type": "string", "minLength": 1}, True, "2021-02-17"),
        parameter("price_type", "The data set; case-insensitive.", {"type": "string", "enum": sorted(parse.PRICE_TYPES)},
                  True, "day_ahead"),
        parameter(
            "hubs",
            "Comma-separated settlement points, in the order the answer lists them (required but for "
            "ancillary_services). For ancillary_services: products (ECRS, NSPIN, REGDN, REGUP, RRS) filter; "
            "settlement point names are accepted and do not filter; both kinds at once is a 400.",
            {"type": "array", "items": {"type": "string", "enum": names}, "minItems": 1},
            example=["HB_NORTH", "HB_HOUSTON"], style="form", explode=False,
        ),
        parameter("resolution", "`15min`: real-time's native intervals (real_time only).",
                  {"type": "string", "enum": [parse.HOURLY, parse.FIFTEEN_MINUTES]}),
        parameter("tz", "Instants printed in UTC (the default) or in Central time with their real offset.",
                  {"type": "string", "enum": [parse.UTC, parse.CENTRAL]}),
        parameter("aggregate", "One value per Central-time market period (weeks start Monday); a period's instant is its start.",
                  {"type": "string", "enum": list(parse.AGGREGATES)}),
        parameter("stat", "The statistic of an aggregate (default mean); needs aggregate.",
                  {"type": "string", "enum": list(parse.STATS)}),
        parameter("block", "Only the intervals of an ERCOT trading block (5x16 = onpeak, offpeak = 2x16 + 7x8), by Central "
                  "hour ending; NERC holidays are off-peak.", {"type": "string", "enum": list(parse.BLOCKS)}),
        parameter("format", "The answer's format (else the Accept header decides; default json).",
                  {"type": "string", "enum": list(formats.FORMATS)}),
        parameter("layout", "For csv (default wide), arrow and parquet (default long).",
                  {"type": "string", "enum": list(arrow.LAYOUTS)}),
    ]


def _price_responses():
    binary = {"type": "string", "contentEncoding": "binary"}
    return {
        "200": {
            "description": "The prices, in the format asked for.",
            "headers": {
                "ETag": {"description": "Of the loaded data and the normalised query", "schema": {"type": "string"}},
                "Cache-Control": {"description": "public, max-age=N", "schema": {"type": "string"}},
            },
            "content": {
                "application/json": {"schema": {"$ref": "#/components/schemas/Prices"}},
                "text/csv": {"schema": {"type": "string"}},
                formats.FORMATS[formats.ARROW].media_type: {"schema": binary},
                formats.FORMATS[formats.PARQUET].media_type: {"schema": binary},
            },
        },
        "304": {"description": "Not modified: the If-None-Match ETag is current."},
        "400": {"description": "A bad query: what is wrong, and what to change.", "content": _JSON_ERROR},
        **_GUARD_RESPONSES,
        "413": {"description": "The answer (or the request body) is over the service's size limit: ask for less, or use "
                "Arrow Flight.", "content": _JSON_ERROR},
        "500": {"description": "A server fault (logged, not described).", "content": _JSON_ERROR},
        "503": {"description": "The answer took longer than the request time limit to compute: ask for less.",
                "content": _JSON_ERROR},
    }


def document(settlement_points):
    """The OpenAPI document (a dict) for a store with these settlement points."""
    parameters = _query_parameters(settlement_points)
    body_properties = {p["name"]: (p["schema"] if p["name"] != "hubs" else p["schema"]) for p in parameters}
    for bound in ("start_date", "end_date"):
        body_properties[bound] = {"oneOf": [{"type": "string", "minLength": 1}, {"type": "integer"}]}
    prices_get = {
        "summary": "Prices of settlement points (or ancillary products) over a range",
        "operationId": "getPrices",
        "parameters": parameters + [
            {"name": "If-None-Match", "in": "header", "required": False, "schema": {"type": "string"},
             "description": "An ETag of an earlier answer: 304 when it is current."},
            {"name": "Accept-Encoding", "in": "header", "required": False, "schema": {"type": "string"},
             "description": f"{', '.join(encoding.CODERS)}: JSON and CSV bodies of {encoding.MIN_BYTES} bytes or more are compressed."},
        ],
        "responses": _price_responses(),
    }
    prices_post = {
        "summary": "The GET's answer for a query in a JSON body (for lists of settlement points too long for a URL)",
        "operationId": "postPrices",
        "requestBody": {
            "required": True,
            "content": {"application/json": {"schema": {
                "type": "object",
                "properties": body_properties,
                "required": ["start_date", "end_date", "price_type"],
                "additionalProperties": False,
            }}},
        },
        "responses": {**_price_responses(),
                      "411": {"description": "No Content-Length (nor chunked body).", "content": _JSON_ERROR}},
    }
    stream_get = {
        "summary": "Server-Sent Events of new intervals, as reloads bring them (served on --stream-addr; here a redirect)",
        "description": "One event per data set (`event:` its name) whenever a reload brings intervals newer than the "
        "subscriber has seen, `data:` in the GET /api/prices shape; `id:` the newest instant sent of each data set "
        "(comma-separated for combined), which Last-Event-ID resumes after; a comment every 15 s. A subscriber that "
        "does not take its events is dropped (it reconnects with Last-Event-ID and misses nothing).",
        "operationId": "getStream",
        "parameters": [p for p in parameters if p["name"] not in events.NOT_STREAMED] + [
            {"name": "backfill", "in": "query", "required": False,
             "schema": {"type": "integer", "minimum": 0, "maximum": events.MAX_BACKFILL},
             "description": "The newest N intervals of each data set, sent on connect."},
            {"name": "Last-Event-ID", "in": "header", "required": False, "schema": {"type": "string"},
             "description": "The id of the last event received: the stream resumes after it."},
        ],
        "security": _SECURITY,
        "responses": {
            "200": {"description": "The event stream (on the stream's own address).",
                    "content": {"text/event-stream": {"schema": {"type": "string"}}}},
            "307": {"description": "On the HTTP port: the stream's address, the query string kept (EventSource, fetch "
                    "and curl -L follow it).",
                    "headers": {"Location": {"schema": {"type": "string"}}},
                    "content": {"application/json": {"schema": {"$ref": "#/components/schemas/StreamPointer"}}}},
            "400": {"description": "A bad subscription: what is wrong, and what to change.", "content": _JSON_ERROR},
            **_GUARD_RESPONSES,
        },
    }
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "ercot_fast",
            "version": __version__,
            "description": "ERCOT day-ahead, real-time and ancillary-service prices from memory. Errors are JSON "
            "`{\"error\": ..., \"details\": ...}`: `details` says what to change.",
        },
        "paths": {
            "/api/prices": {"get": {**prices_get, "security": _SECURITY}, "post": {**prices_post, "security": _SECURITY}},
            "/api/stream": {"get": stream_get},
            "/": {"get": {
                "summary": "The price dashboard: a page drawing prices from this API, following the stream",
                "operationId": "getDashboard",
                "responses": {"200": {"description": "The page", "content": {"text/html": {"schema": {"type": "string"}}}}},
            }},
            "/api/health": {"get": {
                "summary": "Whether the service serves, and any problems",
                "operationId": "getHealth",
                "responses": {
                    "200": {"description": "healthy, or degraded (serving, with problems)",
                            "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Health"}}}},
                    "503": {"description": "no data: cannot serve",
                            "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Health"}}}},
                },
            }},
            "/api/ready": {"get": {
                "summary": "Whether the service should get traffic: prices loaded and not stopping",
                "operationId": "getReady",
                "responses": {
                    "200": {"description": "ready",
                            "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Ready"}}}},
                    "503": {"description": "not ready: no prices loaded, or draining before a stop (the reason says which)",
                            "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Ready"}}}},
                },
            }},
            "/api/available_hubs": {"get": {
                "summary": "The settlement points in the data, hubs then load zones then DC ties",
                "operationId": "getAvailableHubs",
                "security": _SECURITY,
                "responses": {"200": {"description": "Names", "content": {"application/json": {
                    "schema": {"type": "array", "items": {"type": "string"}}}}}, **_GUARD_RESPONSES},
            }},
            "/metrics": {"get": {
                "summary": "Metrics of every process, in the Prometheus text format (version 0.0.4)",
                "operationId": "getMetrics",
                "security": [{}, {"metricsKey": []}],
                "responses": {
                    "200": {"description": "Counters, gauges and histograms",
                            "content": {"text/plain": {"schema": {"type": "string"}}}},
                    "401": {"description": "The service has a metrics key (--metrics-key) and it was not sent.",
                            "content": _JSON_ERROR},
                },
            }},
            "/api/admin/reload": {"post": {
                "summary": "Load the data directory again, as SIGHUP does (needs API keys configured, and one sent)",
                "operationId": "postReload",
                "security": [{"apiKey": []}, {"bearer": []}],
                "responses": {
                    "202": {"description": "Requested: the reload runs in the background; the new data is served once "
                                           "published (/metrics: ercot_fast_reloads_total, "
                                           "ercot_fast_store_published_timestamp_seconds)",
                            "content": {"application/json": {"schema": {
                                "type": "object", "required": ["status", "details"], "additionalProperties": False,
                                "properties": {"status": {"type": "string"}, "details": {"type": "string"}}}}}},
                    "403": {"description": "The service has no API keys: reload with SIGHUP or --reload-interval.",
                            "content": _JSON_ERROR},
                    **_GUARD_RESPONSES,
                },
            }},
            "/api/openapi.json": {"get": {
                "summary": "This document",
                "operationId": "getOpenApi",
                "responses": {"200": {"description": "OpenAPI 3.1", "content": {"application/json": {"schema": {"type": "object"}}}}},
            }},
        },
        "components": {"securitySchemes": {
            "apiKey": {"type": "apiKey", "in": "header", "name": "X-API-Key",
                       "description": "When the service has API keys (--api-keys-file, API_KEYS)."},
            "bearer": {"type": "http", "scheme": "bearer", "description": "The same key as Authorization: Bearer <key>."},
            "metricsKey": {"type": "http", "scheme": "bearer", "description": "The metrics key, when set (--metrics-key)."},
        }, "schemas": {
            "Prices": {
                "type": "object",
                "required": ["timestamps", "data"],
                "additionalProperties": False,
                "properties": {
                    "timestamps": {"type": "array", "items": {"type": "string", "format": "date-time"}},
                    "data": {"type": "array", "items": {
                        "type": "object",
                        "required": ["hub", "prices"],
                        "additionalProperties": False,
                        "properties": {
                            "hub": {"type": "string"},
                            "prices": {"type": "array", "items": {"type": ["number", "null"]}},
                        },
                    }},
                },
            },
            "Health": {
                "type": "object",
                "required": ["status", "service", "timestamp"],
                "properties": {
                    "status": {"type": "string", "enum": ["healthy", "degraded", "no_data"]},
                    "service": {"type": "string"},
                    "timestamp": {"type": "string", "format": "date-time"},
                    "data": {"type": "string"},
                    "details": {"type": "string"},
                    "problems": {"type": "array", "items": {
                        "type": "object", "required": ["problem", "details"],
                        "properties": {"problem": {"type": "string"}, "details": {"type": "string"}},
                    }},
                },
            },
            "Ready": {
                "type": "object",
                "required": ["status"],
                "additionalProperties": False,
                "properties": {
                    "status": {"type": "string", "enum": [health.READY, health.NOT_READY]},
                    "reason": {"type": "string"},
                },
            },
            "StreamPointer": {
                "type": "object",
                "required": ["stream", "details"],
                "additionalProperties": False,
                "properties": {"stream": {"type": "string"}, "details": {"type": "string"}},
            },
            "Error": {
                "type": "object",
                "required": ["error", "details"],
                "additionalProperties": False,
                "properties": {"error": {"type": "string"}, "details": {"type": "string"}},
            },
        }},
    }
