"""Run the service under gunicorn: the application, its arbiter, the worker classes.

The store is loaded once in the master and published as memory-mapped files
(``store.shared``), so N workers share one copy of the prices. SIGHUP reloads
the data directory in the master, which publishes the new store; every
process swaps to it in place. SIGINT/SIGTERM stop everything.

The Arrow Flight server runs in one more child of the master
(``serve.supervisor``), forked before gunicorn starts (gRPC threads and fork()
do not mix, and gunicorn forks workers at any time): it shares the store's
pages too, follows reloads like the workers, is restarted after a crash, and
stops with the master.
"""
import gc
import logging
import os
import signal
import sys

from gunicorn.app.base import BaseApplication
from gunicorn.arbiter import Arbiter
from gunicorn.glogging import Logger

from ercot_fast import health, logs
from ercot_fast.api import access_log
from ercot_fast.api.app import ROUTES, LiveApp, create_app
from ercot_fast.errors import ChildStartError
from ercot_fast.flight import server as flight_server
from ercot_fast.serve import reload, tls
from ercot_fast.serve.supervisor import ChildCall, Supervisor
from ercot_fast.store.load import load_store, return_freed_memory
from ercot_fast.store.shared import Publisher

log = logging.getLogger(__name__)


class GunicornLogger(Logger):
    """gunicorn's logger, writing in the service's log format (``logs``)."""

    def setup(self, cfg):
        super().setup(cfg)
        for handler in self.error_log.handlers:
            handler.setFormatter(logs.formatter())

# config.WORKER_CLASSES -> gunicorn's worker class
WORKER_CLASSES = {
    "meinheld": "ercot_fast.serve.worker.MeinheldWorker",
    "gthread": "ercot_fast.serve.worker.ThreadWorker",
    "sync": "ercot_fast.serve.worker.SyncWorker",
}
# PERF: a gthread worker's threads: 4 served the tile over HTTPS faster and with a lower p99
# than 1, 2 or 8 (the handshakes and writes release the GIL)
GTHREAD_THREADS = 4


def check_worker_class(worker_class):
    """Fail early, with the fix, when the meinheld worker cannot load."""
    if worker_class == "meinheld":
        try:
            import meinheld.server  # noqa: F401
        except ImportError as exc:
            raise SystemExit(
                f"error: the meinheld worker does not load ({exc}); install it with "
                "`sh docker/install.sh` or choose --worker-class sync"
            ) from exc


class PriceService(BaseApplication):
    """The gunicorn application: loads the store, publishes it to every
    process (``store.shared``), and reloads it on SIGHUP in place."""

    def __init__(self, settings, data_dir):
        self.settings = settings
        self.data_dir = data_dir
        loaded = load_store(data_dir)
        if loaded.total_rows == 0:
            log.error("no prices found in %s: /api/health answers 503 until data is there", data_dir)
        self.publisher = Publisher(settings.runtime_dir)
        self._owner = os.getpid()
        try:
            self.publisher.publish(loaded)
            del loaded
            return_freed_memory()  # before the workers fork: they must not inherit the loaded arrays
            follower = self._follower = self.publisher.follower()
            self.flight = Supervisor("Arrow Flight server", flight_server.serve)
            sql_limits = (settings.sql_timeout, settings.sql_max_result_mb, settings.sql_memory_mb)
            access_log_format = settings.log_format if settings.access_log else None
            flight_tls = (settings.tls_cert, settings.tls_key) if settings.tls else None
            self._flight_args = (follower, settings.flight_addr, settings.max_range_days, settings.stale_after, sql_limits,
                                 access_log_format, flight_tls)
            self._reload = None  # the ChildCall loading a reload, while one runs
            self._reload_folder = None
            self._reload_again = False
            super().__init__()
        except BaseException:  # a full runtime folder, a bad setting: leave no folder behind
            self.publisher.close()
            raise

    def _build_app(self, prices, problems):
        s = self.settings
        return create_app(
            prices,
            s.max_range_days,
            s.response_cache_mb,
            s.cache_max_age,
            layers=[access_log.layer(ROUTES, s.log_format)] if s.access_log else (),
            max_series=s.max_series,
            problems=problems,
            stale_after=s.stale_after,
        )

    def load_config(self):
        options = {
            "bind": self.settings.json_addr,
            "workers": self.settings.workers,
            "worker_class": WORKER_CLASSES[self.settings.worker_class],
            "loglevel": self.settings.log_level,
            "accesslog": None,  # ours is a layer of the seam (api.access_log): both HTTP paths
            "logger_class": "ercot_fast.serve.gunicorn.GunicornLogger",
            "control_socket_disable": True,
            "graceful_timeout": 5,
            # NOTE: meinheld's own limit is about 8 KB; the sync worker's is
            # raised to match (longer lists of settlement points: POST)
            "limit_request_line": 8190,
            "proc_name": "ercot-fast",
        }
        if self.settings.worker_class == "gthread":
            options["threads"] = GTHREAD_THREADS
        if self.settings.http_tls:
            options.update(certfile=self.settings.tls_cert, keyfile=self.settings.tls_key, ssl_context=tls.ssl_context)
        for key, value in options.items():
            self.cfg.set(key, value)

    def load(self):
        """The WSGI app, built in each worker after it forked (the master
        and the Flight child never hold an app, nor the store it serves)."""
        return LiveApp(self._follower, self._build_app)

    def run(self):
        """Start the Flight child, then gunicorn; whatever ends gunicorn
        (SIGTERM, Ctrl-C, a fatal error) also stops the child and removes
        the shared store's files."""
        try:
            try:
                self.flight.start(*self._flight_args)
            except ChildStartError as exc:
                raise SystemExit(
                    f"error: Arrow Flight cannot serve on {self.settings.flight_addr}: {exc.details} "
                    "(is the port in use? choose another with --flight-addr or FLIGHT_ADDR)"
                )
            _Arbiter(self).run()
        except RuntimeError as exc:  # as BaseApplication.run reports it
            print(f"\nError: {exc}\n", file=sys.stderr)
            sys.exit(1)
        finally:
            if os.getpid() == self._owner:  # the workers unwind through here too
                if self._reload is not None:
                    self._reload.cancel()
                self.flight.stop()
                self.publisher.close()

    def reload_data(self):
        """SIGHUP: load the data directory again, in a child (its memory, or
        a crash in a corrupt file, stays out of the master, which goes on
        minding its workers); ``finish_reload`` publishes what it loaded. A
        SIGHUP during a reload starts one more after it."""
        if self._reload is not None:
            self._reload_again = True
            return
        s = self.settings
        self._reload_folder = self.publisher.reserve()
        self._reload = ChildCall(
            reload.load_and_write, self.data_dir, self._follower.store, s.min_reload_fraction, s.allow_shrink,
            str(self._reload_folder),
        )

    def finish_reload(self):
        """From the arbiter's loop: when the loader is done, publish the new
        store unless it would shrink the service by accident or failed; the
        processes swap to it in place, losing no request. Health tells."""
        if self._reload is None:
            return
        try:
            outcome = self._reload.result()
        except ChildStartError as exc:
            self._reload = None
            log.error("reload of %s failed (%s: %s): still serving the data loaded before", self.data_dir, exc.message, exc.details)
            self._tell(health.problem(
                health.RELOAD_FAILED, "the last reload failed (the service log says why); still serving the data loaded before",
            ))
        else:
            if outcome is None:
                return  # still loading
            self._reload = None
            self._publish(outcome)
        if self._reload_again:
            self._reload_again = False
            self.reload_data()

    def _publish(self, outcome):
        why = "; ".join(outcome["reasons"])
        if not outcome["published"]:
            log.error("reload refused, still serving the data loaded before: %s (allow it with --allow-shrink "
                      "or by creating %s/%s before SIGHUP)", why, self.data_dir, reload.ALLOW_SHRINK_ONCE)
            self._tell(health.problem(
                health.RELOAD_REFUSED,
                f"the last reload was refused: {why}; still serving the data loaded before "
                f"(to accept it: --allow-shrink, or {reload.ALLOW_SHRINK_ONCE} in the data directory, then SIGHUP)",
            ))
            return
        if why:
            log.warning("reload shrinks the service, as allowed: %s", why)
        self.publisher.adopt(self._reload_folder)
        self._follower.refresh()  # workers forked from now on (a crashed one's replacement) start on it
        gc.collect()
        log.info("reloaded %s in %.2f s: the workers and the Flight server swap to it in place",
                 self.data_dir, outcome["seconds"])

    def _tell(self, problem):
        self.publisher.set_problems([problem])
        self._follower.refresh()


class _Arbiter(Arbiter):
    """gunicorn's arbiter, also minding the Flight child: it collects the
    child's exit before gunicorn's ``waitpid(-1)`` would take it silently, and
    restarts a crashed child (with back-off) from its main loop."""

    def handle_hup(self):
        # NOTE: not gunicorn's reload, which replaces the workers and closes
        # their keep-alive connections: the data swaps in place instead.
        self.app.reload_data()
        self.app.flight.revive()

    def handle_chld(self):
        self.app.flight.reap()
        super().handle_chld()

    handle_cld = handle_chld

    def manage_workers(self):
        super().manage_workers()
        self.app.flight.keep_alive()
        self.app.finish_reload()

    def kill_worker(self, pid, sig):
        # NOTE: a quick stop is SIGQUIT in gunicorn, but a meinheld worker
        # takes SIGQUIT in Python only when a request arrives; SIGINT means
        # the same quick stop to every worker class and meinheld takes it in C.
        super().kill_worker(pid, signal.SIGINT if sig == signal.SIGQUIT else sig)
