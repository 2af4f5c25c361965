"""The WSGI app in front of Falcon for the hottest request there is: a
dashboard's repeated, unconditional GET /api/prices.

A request the prices resource has already prepared (the same query string,
Accept and Accept-Encoding) is answered here with the same status, headers
and body the resource gives it (the resource owns them: ``reply``), without building Falcon's request and response
objects. Everything else (new queries, errors, If-None-Match, other routes
and methods) goes to the Falcon app. Both paths sit behind the one seam
(``api.seam``), which sees every request and which path answered it.
"""
from ercot_fast.api.resources import answer_key

#: environ key naming the path that answered a request, for the seam's layers
ANSWERED_BY = "ercot_fast.answered_by"
FAST_PATH = "fastpath"
FALCON = "falcon"


class PollFastPath:
    def __init__(self, app, prices):
        self._app = app
        self._prices = prices

    def __call__(self, environ, start_response):
        if (
            environ.get("PATH_INFO") == "/api/prices"
            and environ["REQUEST_METHOD"] == "GET"
            and "HTTP_IF_NONE_MATCH" not in environ
        ):
            answer = self._prices.prepared.get(answer_key(environ))
            if answer is not None:
                headers, body = self._prices.reply(answer)
                headers.append(("content-length", str(len(body))))
                environ[ANSWERED_BY] = FAST_PATH
                start_response("200 OK", headers)
                return [body]
        environ[ANSWERED_BY] = FALCON
        return self._app(environ, start_response)
