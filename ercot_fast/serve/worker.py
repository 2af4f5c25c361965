"""The project's own gunicorn worker classes: meinheld's, and gunicorn's
gthread (the one with TLS: meinheld has none) and sync workers with a quiet
quick stop.

meinheld's ``meinheld.gmeinheld.MeinheldWorker`` replaces gunicorn's
``Logger.error`` and ``Logger.access`` for the whole process with functions
of ``(exc, val, tb)`` and ``(environ)``, and its constructor runs in the
master: gunicorn 27 then calls ``log.error(msg, *args)`` when it reaps a dead
worker, and the master dies. This class runs meinheld's server the same way
without touching gunicorn's logger: meinheld's own C-level failures reach
gunicorn's log through a small adapter.

Signals: meinheld's loop takes SIGTERM and SIGINT in C (stop accepting,
finish open connections, at most about a second). SIGQUIT would reach a
Python handler, which runs only when a request arrives, so the arbiter sends
SIGINT instead for a quick stop (``serve.gunicorn``).

Large answers: meinheld 1.0.2 is built against greenlet 0.4's struct layout.
When a response write would block (EAGAIN: an answer larger than the socket
buffer takes, a few MB on loopback, far less to a slow client), it reads a
greenlet 3 object at the wrong offset: it spins, then appends an HTML 500
page after the body and closes the connection, or crashes. ``_blocking_send``
hands meinheld the client socket in blocking mode for the body (and back to
non-blocking once it is written), so a write never returns EAGAIN. It costs
about a microsecond per request.

gunicorn's sync and gthread workers answer a quick stop (SIGINT, SIGQUIT)
with ``sys.exit`` from their signal handler, in the middle of whatever they
are doing: an answer being written ends in a logged traceback. ``SyncWorker``
and ``ThreadWorker`` stop as they do on SIGTERM instead: they finish the
requests in hand (within the graceful timeout), then exit.
"""
import os
import traceback

from gunicorn.workers.base import Worker
from gunicorn.workers.gthread import ThreadWorker as GunicornThreadWorker
from gunicorn.workers.sync import SyncWorker as GunicornSyncWorker


class _ErrorLog:
    """meinheld's C server reports a failure inside it as ``error(exc, val, tb)``."""

    def __init__(self, log):
        self._log = log

    def error(self, exc, val, tb):
        self._log.error("meinheld: %s", "".join(traceback.format_exception(exc, val, tb)).rstrip())


class _NonBlockingAgain:
    """The body as meinheld iterates it; ``close`` (which meinheld calls once
    the last byte is written, before it reads the next request) makes the
    socket non-blocking again."""

    __slots__ = ("_body", "_fd")

    def __init__(self, body, fd):
        self._body = body
        self._fd = fd

    def __iter__(self):
        return iter(self._body)  # PERF: meinheld iterates the body itself

    def close(self):
        try:
            close = getattr(self._body, "close", None)
            if close is not None:
                close()
        finally:
            fd, self._fd = self._fd, -1
            if fd >= 0:
                try:
                    os.set_blocking(fd, False)
                except OSError:  # the client has gone: meinheld closes the socket
                    pass


def _blocking_send(app):
    def app_with_blocking_send(environ, start_response):
        body = app(environ, start_response)
        fd = environ["meinheld.client"].get_fd()
        os.set_blocking(fd, True)
        return _NonBlockingAgain(body, fd)

    return app_with_blocking_send


class MeinheldWorker(Worker):
    def run(self):
        from meinheld import server

        server.set_access_logger(None)  # access logs belong to the seam, not the server
        server.set_error_logger(_ErrorLog(self.log))
        server.set_keepalive(self.cfg.keepalive)
        server.set_picoev_max_fd(self.cfg.worker_connections)
        server.set_fastwatchdog(self.tmp.fileno(), self.ppid, int(self.timeout))
        server.set_listen_socket([sock.fileno() for sock in self.sockets])
        try:
            server.run(_blocking_send(self.wsgi))
        except KeyboardInterrupt:
            pass

    def handle_quit(self, sig, frame):
        from meinheld import server

        server.stop()

    def handle_exit(self, sig, frame):
        from meinheld import server

        server.stop(int(self.cfg.graceful_timeout))


class SyncWorker(GunicornSyncWorker):
    def handle_quit(self, sig, frame):
        self.handle_exit(sig, frame)


class ThreadWorker(GunicornThreadWorker):
    def handle_quit(self, sig, frame):
        self.handle_exit(sig, frame)
