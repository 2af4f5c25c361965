"""Run the service under gunicorn: the application, its arbiter, the worker classes.

The store is loaded once in the master process before the workers fork, so N
workers share one copy of the prices (copy-on-write pages nobody writes).
SIGHUP reloads the data directory in the master and replaces the workers
gracefully; SIGINT/SIGTERM stop everything.

The Arrow Flight server runs in one more child of the master
(``serve.supervisor``), forked before gunicorn starts (gRPC threads and fork()
do not mix, and gunicorn forks workers at any time): it shares the store's
pages too, is restarted over the new store on SIGHUP and after a crash, and
stops with the master.
"""
import logging
import signal
import sys

from gunicorn.app.base import BaseApplication
from gunicorn.arbiter import Arbiter

from ercot_fast.api.app import create_app
from ercot_fast.errors import ChildStartError
from ercot_fast.flight import server as flight_server
from ercot_fast.serve.supervisor import Supervisor
from ercot_fast.store.load import load_store

log = logging.getLogger(__name__)

# config.WORKER_CLASSES -> gunicorn's worker class
WORKER_CLASSES = {
    "meinheld": "ercot_fast.serve.worker.MeinheldWorker",
    "sync": "sync",
}


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
    """The gunicorn application: owns the loaded store and the WSGI app built over it."""

    def __init__(self, settings, data_dir):
        self.settings = settings
        self.data_dir = data_dir
        self.store = load_store(data_dir)
        if self.store.total_rows == 0:
            log.error("no prices found in %s: /api/health answers 503 until data is there", data_dir)
        self.wsgi_app = self._build_app(self.store)
        self.flight = Supervisor("Arrow Flight server", flight_server.serve)
        super().__init__()

    def _build_app(self, prices):
        s = self.settings
        return create_app(prices, s.max_range_days, s.response_cache_mb, s.cache_max_age)

    def _flight_args(self, prices):
        return prices, self.settings.flight_addr, self.settings.max_range_days

    def load_config(self):
        options = {
            "bind": self.settings.json_addr,
            "workers": self.settings.workers,
            "worker_class": WORKER_CLASSES[self.settings.worker_class],
            "loglevel": self.settings.log_level,
            "accesslog": None,
            "control_socket_disable": True,
            "graceful_timeout": 5,
            "proc_name": "ercot-fast",
        }
        for key, value in options.items():
            self.cfg.set(key, value)

    def load(self):
        return self.wsgi_app

    def run(self):
        """Start the Flight child, then gunicorn; whatever ends gunicorn
        (SIGTERM, Ctrl-C, a fatal error) also stops the child."""
        try:
            self.flight.start(*self._flight_args(self.store))
        except ChildStartError as exc:
            raise SystemExit(
                f"error: Arrow Flight cannot serve on {self.settings.flight_addr}: {exc.details} "
                "(is the port in use? choose another with --flight-addr or FLIGHT_ADDR)"
            )
        try:
            _Arbiter(self).run()
        except RuntimeError as exc:  # as BaseApplication.run reports it
            print(f"\nError: {exc}\n", file=sys.stderr)
            sys.exit(1)
        finally:
            self.flight.stop()  # a no-op in the workers, which unwind through here

    def reload(self):
        """SIGHUP: load the data directory again; the arbiter then forks new
        workers over the new store. A failed load keeps the data being served."""
        super().reload()
        try:
            fresh = load_store(self.data_dir)
        except Exception:
            log.exception("reload of %s failed: still serving the data loaded before", self.data_dir)
            return
        self.store = fresh
        self.wsgi_app = self._build_app(fresh)
        self.flight.restart(*self._flight_args(fresh))


class _Arbiter(Arbiter):
    """gunicorn's arbiter, also minding the Flight child: it collects the
    child's exit before gunicorn's ``waitpid(-1)`` would take it silently, and
    restarts a crashed child (with back-off) from its main loop."""

    def handle_chld(self):
        self.app.flight.reap()
        super().handle_chld()

    handle_cld = handle_chld

    def manage_workers(self):
        super().manage_workers()
        self.app.flight.keep_alive()

    def kill_worker(self, pid, sig):
        # NOTE: a quick stop is SIGQUIT in gunicorn, but a meinheld worker
        # takes SIGQUIT in Python only when a request arrives; SIGINT means
        # the same quick stop to every worker class and meinheld takes it in C.
        super().kill_worker(pid, signal.SIGINT if sig == signal.SIGQUIT else sig)
