"""The live-price stream: ``GET /api/stream`` as Server-Sent Events
(``api.events``) to any number of subscribers, in a supervised child of its
own (``serve.supervisor``) on ``--stream-addr``.

Why a child and not the HTTP workers: a subscriber holds its connection for
hours, and a meinheld worker holding one cannot answer ``/api/prices`` meanwhile
unless the response suspends in a greenlet, which meinheld 1.0.2 does with
greenlet 0.4's struct layout (``serve.worker``: a blocked write spins or
crashes). One asyncio loop (aiohttp) holds every subscriber for a few KB each
and never touches the workers; the HTTP port's ``/api/stream`` redirects here
(``api.resources.StreamPointer``). Figures: bench/README.md.

The child follows the master's store like the other children (``store.shared``):
every ``FOLLOW_SECONDS`` it looks at the generation, and after a reload each
subscriber is sent the intervals newer than it has seen. API keys and the
shared rate limit apply as on the HTTP port (``api.guard.check``), once per
connection. A subscriber that does not take its events (more than
``MAX_UNSENT_BYTES`` waiting, or a write blocked ``WRITE_SECONDS``) is dropped;
its EventSource reconnects with ``Last-Event-ID`` and misses nothing.
"""
import asyncio
import logging
import os
import threading

from aiohttp import web

from ercot_fast.access.keys import ApiKeys, presented
from ercot_fast.api import events, guard
from ercot_fast.api.app import HINTS
from ercot_fast.config import split_addr
from ercot_fast.errors import QueryError

log = logging.getLogger(__name__)

PATH = "/api/stream"
FOLLOW_SECONDS = 0.1  # how often the child looks at what the master published
HEARTBEAT_SECONDS = 15.0  # a comment this often keeps proxies and idle timeouts from closing the stream
MAX_UNSENT_BYTES = 1 << 20  # a subscriber with more than this not yet taken is dropped
WRITE_SECONDS = 10.0  # ... and so is one whose write does not finish in this time
_BACKLOG = 2048  # subscribers reconnecting at once after a restart
_CACHED_CATCH_UPS = 4096  # catch-ups kept per store: subscribers of one query share one rendering
_EVENT_STREAM_HEADERS = {
    "content-type": "text/event-stream; charset=utf-8",
    "cache-control": "no-store",
    "x-accel-buffering": "no",  # nginx passes it unbuffered
    "access-control-allow-origin": "*",
    "server": "ercot-fast",
}


class _Dropped(Exception):
    """The subscriber does not take its events."""


def serve(child, follower, addr, max_range_days, max_series, limit=None, ssl_context=None):
    """The stream child's target: serve ``/api/stream`` on ``addr`` until
    stopped, following the master's published store. ``limit``: the shared
    rate limit (``access.limits``) or None; ``ssl_context``: a function
    making the server's ``ssl.SSLContext`` (HTTPS), or None."""
    asyncio.run(_serve(child, follower, addr, max_range_days, max_series, limit, ssl_context))


class Stream:
    """Every subscriber's side of the published store: the current one, an
    event set at the next reload, and catch-ups rendered once per
    (subscription, what was seen) for a store."""

    def __init__(self, follower, max_range_days, max_series, limit):
        self.follower = follower
        self.max_range_days = max_range_days
        self.max_series = max_series
        self.limit = limit
        self.keys = ApiKeys(follower.api_keys)
        self.reloaded = asyncio.Event()  # set at the next reload (then replaced)
        self.subscribers = 0  # connected now
        self._catch_ups = {}

    def app(self):
        """The aiohttp application serving ``PATH``."""
        app = web.Application()
        app.router.add_route("GET", PATH, self.handle)
        app.router.add_route("OPTIONS", PATH, self.handle)
        return app

    def follow(self):
        """After the master published: the new store (and keys) for every subscriber."""
        if self.follower.changed() and self.follower.refresh():
            self.keys = ApiKeys(self.follower.api_keys)
            self._catch_ups = {}
            reloaded, self.reloaded = self.reloaded, asyncio.Event()
            reloaded.set()
            log.info("live-price stream follows the new store: %d subscribers catch up", self.subscribers)

    def catch_up(self, subscription, seen):
        key = (subscription, seen)
        done = self._catch_ups.get(key)
        if done is None:
            if len(self._catch_ups) >= _CACHED_CATCH_UPS:
                self._catch_ups.clear()
            done = self._catch_ups[key] = events.catch_up(subscription, self.follower.store, seen, self.max_range_days)
        return done

    async def handle(self, request):
        if request.method == "OPTIONS":
            return _preflight(request)
        refusal, _ = guard.check(self.keys, self.limit, presented(request.headers.get("X-API-Key"),
                                 request.headers.get("Authorization")), request.remote)
        if refusal is not None:
            status, error, details, headers = refusal
            return _json(int(status.split()[0]), error, details, headers)
        params = {name: ",".join(request.query.getall(name)) for name in request.query}
        store = self.follower.store
        try:
            subscription = events.subscribe(params, store, self.max_range_days, self.max_series)
            backfill = events.backfill_count(params.get("backfill"))
            seen = events.start(subscription, store, backfill, request.headers.get("Last-Event-ID"))
        except QueryError as exc:
            hint = HINTS.get(exc.about)
            return _json(400, exc.message, f"{exc.details}; {hint}" if hint else exc.details)
        response = web.StreamResponse(headers=_EVENT_STREAM_HEADERS)
        await response.prepare(request)
        self.subscribers += 1
        try:
            await _send(request, response, events.CONNECTED)
            while True:
                reloaded = self.reloaded
                found, seen = self.catch_up(subscription, seen)
                for event in found:
                    await _send(request, response, event)
                try:
                    # PERF: asyncio.timeout, not wait_for: no task per wait (a reload wakes every subscriber)
                    async with asyncio.timeout(HEARTBEAT_SECONDS):
                        await reloaded.wait()
                except TimeoutError:
                    await _send(request, response, events.HEARTBEAT)
        except _Dropped:
            if request.transport is not None:
                request.transport.abort()  # NOTE: close() would first send all that is buffered
        except ConnectionError:
            pass
        finally:
            self.subscribers -= 1
        return response


async def _send(request, response, data):
    transport = request.transport
    if transport is None or transport.is_closing():
        raise ConnectionResetError
    if transport.get_write_buffer_size() > MAX_UNSENT_BYTES:
        log.warning("stream subscriber %s dropped: it does not take its events", request.remote)
        raise _Dropped
    try:
        async with asyncio.timeout(WRITE_SECONDS):  # NOTE: the write runs at once, in this task
            await response.write(data)
    except TimeoutError:
        log.warning("stream subscriber %s dropped: a write blocked for %g s", request.remote, WRITE_SECONDS)
        raise _Dropped from None


def _json(status, error, details, headers=()):
    return web.json_response({"error": error, "details": details}, status=status,
                             headers={"cache-control": "no-store", "access-control-allow-origin": "*", "server": "ercot-fast",
                                      **dict(headers)})


def _preflight(request):
    """CORS preflight (a page on the HTTP port sending X-API-Key or Last-Event-ID here)."""
    return web.Response(status=204, headers={
        "access-control-allow-origin": "*",
        "access-control-allow-methods": "GET",
        "access-control-allow-headers": request.headers.get("Access-Control-Request-Headers", "*"),
        "access-control-max-age": "86400",
    })


async def _serve(child, follower, addr, max_range_days, max_series, limit, ssl_context):
    stream = Stream(follower, max_range_days, max_series, limit)
    runner = web.AppRunner(stream.app(), access_log=None, handle_signals=False, shutdown_timeout=1.0)
    await runner.setup()
    host, port = split_addr(addr)
    site = web.TCPSite(runner, host, port, backlog=_BACKLOG, ssl_context=ssl_context() if ssl_context else None)
    try:
        await site.start()
    except OSError as exc:
        await runner.cleanup()
        raise OSError(f"cannot listen on {addr}: {exc.strerror or exc}") from None
    port = runner.addresses[0][1]
    loop = asyncio.get_running_loop()
    stopped = loop.create_future()
    # NOTE: the stop signals are blocked in this process (serve.supervisor): a thread waits for them
    threading.Thread(target=lambda: loop.call_soon_threadsafe(stopped.set_result, child.wait_for_stop()),
                     daemon=True).start()
    log.info("live-price stream serving on %s (pid %d, port %d)", addr, os.getpid(), port)
    child.ready(str(port))
    while not stopped.done():
        stream.follow()
        await asyncio.wait([stopped], timeout=FOLLOW_SECONDS)
    await runner.cleanup()
