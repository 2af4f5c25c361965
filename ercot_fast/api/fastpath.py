"""The WSGI app in front of Falcon for the hottest request there is: a
dashboard's unconditional GET /api/prices, repeated or seen for the first time.

Such a request is answered here with the same status, headers and body the
prices resource gives it (the resource owns them: ``prepare``, ``reply``),
without building Falcon's request and response objects: a query the resource
has already prepared (the same query string, Accept and Accept-Encoding) at
once; a new one parsed as Falcon parses it, prepared and remembered. An
error on the way goes to the Falcon app (``resources.FAILED``), which answers
it through its error handlers; so do If-None-Match, other routes and methods.
Both paths sit behind the one seam (``api.seam``), which sees every request
and which path answered it.
"""
from falcon.util.uri import parse_query_string

from ercot_fast.api.resources import FAILED, answer_key

#: environ key naming the path that answered a request, for the seam's layers
ANSWERED_BY = "ercot_fast.answered_by"
FAST_PATH = "fastpath"
FALCON = "falcon"


class PollFastPath:
    def __init__(self, app, prices):
        self._app = app
        self._prices = prices
        self._keep_blank = app.req_options.keep_blank_qs_values
        self._csv = app.req_options.auto_parse_qs_csv

    def __call__(self, environ, start_response):
        if (
            environ.get("PATH_INFO") == "/api/prices"
            and environ["REQUEST_METHOD"] == "GET"
            and "HTTP_IF_NONE_MATCH" not in environ
        ):
            prices = self._prices
            key = answer_key(environ)
            try:
                answer = prices.prepared.get(key)
                if answer is None:
                    query_string, accept, accept_encoding = key
                    params = parse_query_string(query_string, self._keep_blank, self._csv) if query_string else {}
                    answer = prices.prepare(params, accept, accept_encoding)
                    headers, body = prices.reply(answer)
                    prices.prepared.remember(key, answer)  # NOTE: once answered, as the resource does
                else:
                    headers, body = prices.reply(answer)
            except Exception as exc:  # noqa: BLE001 - Falcon's error handlers answer it
                environ[FAILED] = exc
            else:
                headers.append(("content-length", str(len(body))))
                environ[ANSWERED_BY] = FAST_PATH
                start_response("200 OK", headers)
                return [body]
        environ[ANSWERED_BY] = FALCON
        return self._app(environ, start_response)
