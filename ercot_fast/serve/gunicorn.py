"""Run the service under gunicorn: the application, its arbiter, the worker classes.

The store is loaded once in the master and published as memory-mapped files
(``store.shared``), so N workers share one copy of the prices. SIGHUP reloads
the data directory in the master, which publishes the new store; every
process swaps to it in place. SIGINT/SIGTERM stop everything; with
``--drain-seconds``, SIGTERM first publishes "draining" (``/api/ready`` 503,
gRPC health NOT_SERVING, everything else served as before) for that long, so
load balancers stop sending requests before the ports close.

With ``--reload-interval`` the master also looks at the data directory
(local or s3://) that often, in a forked child, and reloads when a price file
was added, changed or removed. ``POST /api/admin/reload`` and the Flight
action ``reload`` ask the master for a reload (a SIGHUP from the worker or
the Flight child), for callers with an API key.

The Arrow Flight server runs in one more child of the master
(``serve.supervisor``), forked before gunicorn starts (gRPC threads and fork()
do not mix, and gunicorn forks workers at any time): it shares the store's
pages too, follows reloads like the workers, is restarted after a crash, and
stops with the master. The live-price stream (``serve.stream``: Server-Sent
Events on ``--stream-addr``) is another such child. With ``--health-addr`` the gRPC health service
(``serve.grpc_health``) runs in another such child; the master publishes
whether the Flight child serves, for it to report. With ``--fetch`` the
fetcher (``serve.fetcher``) is one more, which signals SIGHUP after a fetch
that changed files.
"""
import functools
import gc
import logging
import os
import signal
import sys
import time

from gunicorn.app.base import BaseApplication
from gunicorn.arbiter import Arbiter
from gunicorn.glogging import Logger

from ercot_fast import health, logs
from ercot_fast.access import keys
from ercot_fast.access.limits import RateLimit
from ercot_fast.api import guard, observe
from ercot_fast.api.app import ROUTES, LiveApp, create_app
from ercot_fast.datadir import open_data_dir
from ercot_fast.errors import ChildStartError
from ercot_fast.metrics.counters import Counters
from ercot_fast.flight import server as flight_server
from ercot_fast.serve import fetcher, grpc_health, reload, stream, tls
from ercot_fast.serve.supervisor import ChildCall, Supervisor
from ercot_fast.store.load import load_store, return_freed_memory
from ercot_fast.store.shared import DRAINING, FLIGHT_SERVING, Publisher

log = logging.getLogger(__name__)


class GunicornLogger(Logger):
    """gunicorn's logger, writing in the service's log format (``logs``)."""

    def setup(self, cfg):
        super().setup(cfg)
        for handler in self.error_log.handlers:
            handler.setFormatter(logs.formatter())

PUBLISHED_AT = ("ercot_fast_store_published_timestamp_seconds", ())
GRACEFUL_SECONDS = 5  # a stop waits this long for the workers' requests in hand (then the children stop)

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
        self.data_dir = open_data_dir(data_dir, settings.s3_endpoint)
        self._listing = reload.listing_digest(self.data_dir)  # what the store served was loaded from
        loaded = load_store(self.data_dir)
        if loaded.total_rows == 0:
            log.error("no prices found in %s: /api/health answers 503 until data is there", data_dir)
        self.publisher = Publisher(settings.runtime_dir)
        self._owner = os.getpid()
        try:
            self.publisher.set_api_keys(self._read_api_keys().digests)
            self.limit = self._rate_limit()
            metrics_folder = self.publisher.directory / "metrics"
            metrics_folder.mkdir()
            self.counters = Counters(metrics_folder, "master")  # reloads, written by the master itself
            self.counters.start(thread=False)
            self.counters.set(PUBLISHED_AT, time.time())
            self.counters.write()
            self._worker_counters = Counters(metrics_folder, "http") if settings.metrics else None
            self.publisher.publish(loaded)
            del loaded
            return_freed_memory()  # before the workers fork: they must not inherit the loaded arrays
            follower = self._follower = self.publisher.follower()
            self.flight = Supervisor("Arrow Flight server", flight_server.serve, title="ercot-flight",
                                     on_change=lambda running: self.set_status(**{FLIGHT_SERVING: running}))
            self.stream = Supervisor("live-price stream", stream.serve, title="ercot-stream")
            self.children = [self.flight, self.stream]
            self.fetcher = None
            if settings.fetch is not None:
                self.fetcher = Supervisor("ERCOT fetcher", fetcher.serve, title="ercot-fetch")
                self.children.append(self.fetcher)
                self._fetch_args = (data_dir, settings.fetch, Counters(metrics_folder, "fetch") if settings.metrics else None)
            self.grpc_health = None
            if settings.health_addr:
                self.grpc_health = Supervisor("gRPC health service", grpc_health.serve, title="ercot-health")
                self.children.append(self.grpc_health)
            sql_limits = (settings.sql_timeout, settings.sql_max_result_mb, settings.sql_memory_mb)
            access_log_format = settings.log_format if settings.access_log else None
            flight_tls = (settings.tls_cert, settings.tls_key) if settings.tls else None
            self._flight_args = (follower, settings.flight_addr, settings.max_range_days, settings.stale_after, sql_limits,
                                 access_log_format, self.limit, Counters(metrics_folder, "flight") if settings.metrics else None,
                                 flight_tls, self.request_reload, settings.flight_advertise)
            stream_tls = functools.partial(tls.server_context, settings.tls_cert, settings.tls_key) if settings.http_tls else None
            self._stream_args = (follower, settings.stream_addr, settings.max_range_days, settings.max_series, self.limit,
                                 stream_tls)
            self._reload = None  # the ChildCall loading a reload, while one runs
            self._reload_folder = None
            self._reload_again = False
            self._poll = None  # the ChildCall listing the data directory, while one runs (--reload-interval)
            self._next_poll = time.monotonic() + settings.reload_interval
            super().__init__()
        except BaseException:  # a full runtime folder, a bad setting: leave no folder behind
            self.publisher.close()
            raise

    def _read_api_keys(self):
        """The keys of --api-keys-file and API_KEYS; at startup an error stops
        the service (SystemExit), on SIGHUP the caller keeps the old keys."""
        try:
            accepted = keys.load(self.settings.api_keys_file, os.environ.get(keys.ENV))
        except ValueError as exc:
            raise SystemExit(f"error: {exc}") from None
        if accepted.enabled:
            log.info("API keys required: %d accepted (%s)", len(accepted.digests), ", ".join(accepted.digests))
        else:
            log.warning("no API keys configured (--api-keys-file or API_KEYS): anyone who can reach %s and %s reads "
                        "every price", self.settings.json_addr, self.settings.flight_addr)
        return accepted

    def _rate_limit(self):
        s = self.settings
        if s.rate_limit is None:
            return None
        burst = s.burst or max(1, round(2 * s.rate_limit))
        limit = RateLimit(s.rate_limit, burst, self.publisher.directory)
        log.info("rate limit: %s per API key (or client address)", limit.describe())
        return limit

    def _build_app(self, follower):
        s = self.settings
        counters = self._worker_counters
        if counters is not None:
            counters.start()  # in the worker: its own counts from zero, written by its own thread
        layers = [
            observe.layer(ROUTES, s.log_format if s.access_log else None, counters),
            guard.layer(keys.ApiKeys(follower.api_keys), self.limit, s.metrics_key, counters),
        ]
        return create_app(
            follower.store,
            s.max_range_days,
            s.response_cache_mb,
            s.cache_max_age,
            layers=layers,
            max_series=s.max_series,
            problems=follower.problems,
            stale_after=s.stale_after,
            max_response_mb=s.max_response_mb,
            request_timeout=s.request_timeout,
            counters=counters,
            draining=lambda: follower.draining,
            request_reload=self.request_reload if follower.api_keys else None,
            stream_addr=s.stream_addr,
        )

    def request_reload(self, who):
        """From a worker or the Flight child: ask the master for a reload, as
        SIGHUP does (reloads in a row coalesce: at most one waits)."""
        log.info("reload requested by %s", who)
        os.kill(self._owner, signal.SIGHUP)

    def load_config(self):
        options = {
            "bind": self.settings.json_addr,
            "workers": self.settings.workers,
            "worker_class": WORKER_CLASSES[self.settings.worker_class],
            "loglevel": self.settings.log_level,
            "accesslog": None,  # ours is a layer of the seam (api.observe): both HTTP paths
            "logger_class": "ercot_fast.serve.gunicorn.GunicornLogger",
            "control_socket_disable": True,
            "graceful_timeout": GRACEFUL_SECONDS,
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
        """Start the Flight child, the stream child (and the gRPC health child), then gunicorn,
        whose arbiter starts the fetch child (``start_fetcher``); whatever ends
        gunicorn (SIGTERM, Ctrl-C, a fatal error) also stops the children and
        removes the shared store's files."""
        try:
            try:
                self.flight.start(*self._flight_args)
            except ChildStartError as exc:
                raise SystemExit(
                    f"error: Arrow Flight cannot serve on {self.settings.flight_addr}: {exc.details} "
                    "(is the port in use? choose another with --flight-addr or FLIGHT_ADDR)"
                )
            try:
                self.stream.start(*self._stream_args)
            except ChildStartError as exc:
                raise SystemExit(
                    f"error: the live-price stream cannot serve on {self.settings.stream_addr}: {exc.details} "
                    "(is the port in use? choose another with --stream-addr or STREAM_ADDR)"
                )
            if self.grpc_health is not None:
                try:
                    self.grpc_health.start(self._follower, self.settings.health_addr)
                except ChildStartError as exc:
                    raise SystemExit(
                        f"error: the gRPC health service cannot serve on {self.settings.health_addr}: {exc.details} "
                        "(is the port in use? choose another with --health-addr or HEALTH_ADDR)"
                    )
            _Arbiter(self).run()
        except RuntimeError as exc:  # as BaseApplication.run reports it
            print(f"\nError: {exc}\n", file=sys.stderr)
            sys.exit(1)
        finally:
            if os.getpid() == self._owner:  # the workers unwind through here too
                for call in (self._reload, self._poll):
                    if call is not None:
                        call.cancel()
                for child in reversed(self.children):  # health first: it never outlives what it reports on
                    child.stop()
                self.publisher.close()

    def signal_while_starting(self):
        """The stop signal that came before gunicorn took the signals, or None
        (the command sets this to its startup handler's)."""
        return None

    def start_fetcher(self):
        """Start the fetch child (``--fetch``), from the arbiter once its signal
        handlers are in place: the child's SIGHUP after its first fetch must
        find gunicorn's handler, not SIGHUP's default, which ends a process."""
        if self.fetcher is None:
            return
        try:
            self.fetcher.start(*self._fetch_args)
        except ChildStartError as exc:
            raise SystemExit(f"error: the fetcher cannot start: {exc.details}")

    def set_status(self, **changes):
        """Publish the master's status (``store.shared``: draining, Flight
        serving) to every process; a failure to write it is logged, not fatal."""
        try:
            self.publisher.set_status(**changes)
        except OSError as exc:
            log.error("could not publish %s to the other processes (%s)", ", ".join(changes), exc)
            return
        self._follower.refresh()

    def reload_data(self):
        """SIGHUP: load the data directory again, in a child (its memory, or
        a crash in a corrupt file, stays out of the master, which goes on
        minding its workers); ``finish_reload`` publishes what it loaded. A
        SIGHUP during a reload starts one more after it. The API keys are
        read again at once."""
        self._reload_api_keys()
        if self._reload is not None:
            self._reload_again = True
            return
        s = self.settings
        self._reload_folder = self.publisher.reserve()
        self._reload = ChildCall(
            reload.load_and_write, self.data_dir, self._follower.store, s.min_reload_fraction, s.allow_shrink,
            str(self._reload_folder),
        )

    def _reload_api_keys(self):
        try:
            accepted = self._read_api_keys()
        except SystemExit as exc:
            log.error("API keys not reloaded, the ones before still hold: %s", str(exc).removeprefix("error: "))
            return
        if accepted.digests != self.publisher.api_keys:
            self.publisher.set_api_keys(accepted.digests)
            self._follower.refresh()

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
            self._count_reload("failed")
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

    def poll_data_dir(self):
        """``--reload-interval``: look at the data directory's price files in a
        child (an object store's listing takes time; the master goes on
        minding its workers) and reload when they changed since the last load."""
        interval = self.settings.reload_interval
        if interval <= 0:
            return
        if self._poll is None:
            if self._reload is None and time.monotonic() >= self._next_poll:
                self._next_poll = time.monotonic() + interval
                self._poll = ChildCall(reload.listing_digest, self.data_dir)
            return
        try:
            listing = self._poll.result()
        except ChildStartError as exc:
            self._poll = None
            self._count_check("failed")
            log.error("could not look at %s for new prices (%s): trying again in %g s", self.data_dir, exc.details, interval)
            return
        if listing is None:
            return  # still listing
        self._poll = None
        if listing == self._listing:
            self._count_check("unchanged")
            return
        self._count_check("changed")
        log.info("price files of %s were added, changed or removed: reloading", self.data_dir)
        self.reload_data()

    def _count_check(self, result):
        self.counters.add(("ercot_fast_data_dir_checks", (("result", result),)))
        self.counters.write()

    def _publish(self, outcome):
        why = "; ".join(outcome["reasons"])
        self._listing = outcome["listing"]  # a refused load is not tried again until the files change again
        self._count_reload("published" if outcome["published"] else "refused")
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
        self.counters.set(PUBLISHED_AT, time.time())
        self.counters.write()
        gc.collect()
        log.info("reloaded %s in %.2f s: the workers and the Flight server swap to it in place",
                 self.data_dir, outcome["seconds"])

    def _count_reload(self, outcome):
        self.counters.add(("ercot_fast_reloads", (("outcome", outcome),)))
        self.counters.write()

    def _tell(self, problem):
        self.publisher.set_problems([problem])
        self._follower.refresh()


class _Arbiter(Arbiter):
    """gunicorn's arbiter, also minding the supervised children: it collects a
    child's exit before gunicorn's ``waitpid(-1)`` would take it silently, and
    restarts a crashed child (with back-off) from its main loop. SIGTERM with
    ``--drain-seconds`` drains first (a second SIGTERM, or SIGINT, stops at once)."""

    _drain_until = None  # monotonic time the drain ends, while draining

    def start(self):
        super().start()
        # a stop signal that came while the children started (remembered by the
        # command's startup handler, which a fork's at-fork hooks may swallow) is
        # handled as if it came now, gunicorn's handlers in place
        received = self.app.signal_while_starting()
        if received is not None:
            self.signal(received, None)
        self.app.start_fetcher()

    def handle_hup(self):
        # NOTE: not gunicorn's reload, which replaces the workers and closes
        # their keep-alive connections: the data swaps in place instead.
        self.app.reload_data()
        for child in self.app.children:
            child.revive()

    def handle_chld(self):
        for child in self.app.children:
            child.reap()
        super().handle_chld()

    handle_cld = handle_chld

    def handle_term(self):
        seconds = self.app.settings.drain_seconds
        if self._drain_until is not None:
            log.info("SIGTERM again while draining: stopping now")
            raise StopIteration
        if seconds <= 0:
            raise StopIteration
        self._drain_until = time.monotonic() + seconds
        self.app.set_status(**{DRAINING: True})
        log.info("SIGTERM: draining for %g s (/api/ready answers 503, everything else is served), then stopping; "
                 "SIGTERM again or SIGINT stops at once", seconds)

    def wait_for_signals(self, timeout=1.0):
        if self._drain_until is not None:  # wake when the drain ends
            timeout = max(0.0, min(timeout, self._drain_until - time.monotonic()))
        return super().wait_for_signals(timeout)

    def manage_workers(self):
        super().manage_workers()
        for child in self.app.children:
            child.keep_alive()
        self.app.finish_reload()
        self.app.poll_data_dir()
        if self._drain_until is not None and time.monotonic() >= self._drain_until:
            log.info("drained: stopping")
            raise StopIteration

    def stop(self, graceful=True):
        # the ports close now: readiness and gRPC health say so while the workers finish
        self.app.set_status(**{DRAINING: True})
        super().stop(graceful)

    def kill_worker(self, pid, sig):
        # NOTE: a quick stop is SIGQUIT in gunicorn, but a meinheld worker
        # takes SIGQUIT in Python only when a request arrives; SIGINT means
        # the same quick stop to every worker class and meinheld takes it in C.
        super().kill_worker(pid, signal.SIGINT if sig == signal.SIGQUIT else sig)
