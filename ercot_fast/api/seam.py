"""The one WSGI seam of the HTTP API: every request, whichever path answers
it (the polling fast path or Falcon), passes the layers composed here, in
order. Cross-cutting concerns attach here and nowhere else: CORS, the access
log and metrics (``api.observe``), API keys and rate limits (``api.guard``).

A layer is a function ``layer(app) -> app`` of WSGI apps. After the inner app
has run, ``environ[fastpath.ANSWERED_BY]`` names the path that answered, and
``environ[KEY_NAME]`` the API key accepted, if any.
"""

#: environ key: the name of the API key a request was accepted with (``api.guard``)
KEY_NAME = "ercot_fast.api_key"


def compose(app, layers):
    """``app`` wrapped in ``layers``, the first outermost."""
    for layer in reversed(tuple(layers)):
        app = layer(app)
    return app


def cors(app):
    """CORS open to any origin, for both paths alike (Falcon's
    ``CORSMiddleware`` policy with ``allow_origins="*"``): every answer to a
    request with an Origin carries ``Access-Control-Allow-Origin: *``; a
    preflight (OPTIONS with Access-Control-Request-Method) is told the
    route's allowed methods."""

    def with_cors(environ, start_response):
        if "HTTP_ORIGIN" not in environ:  # PERF: no cost for requests without CORS
            return app(environ, start_response)
        preflight = environ["REQUEST_METHOD"] == "OPTIONS" and "HTTP_ACCESS_CONTROL_REQUEST_METHOD" in environ

        def start_with_cors(status, headers, exc_info=None):
            names = {name.lower() for name, _ in headers}
            headers = list(headers)
            if "access-control-allow-origin" not in names:
                headers.append(("access-control-allow-origin", "*"))
            if preflight and status.startswith("2"):
                allow = next((value for name, value in headers if name.lower() == "allow"), None)
                headers = [(n, v) for n, v in headers if n.lower() != "allow"]
                if allow is None:
                    headers = [(n, v) for n, v in headers if not n.lower().startswith("access-control-")]
                else:
                    requested = environ.get("HTTP_ACCESS_CONTROL_REQUEST_HEADERS", "*")
                    headers += [
                        ("access-control-allow-methods", allow),
                        ("access-control-allow-headers", requested),
                        ("access-control-max-age", "86400"),
                    ]
            return start_response(status, headers, exc_info)

        return app(environ, start_with_cors)

    return with_cors
