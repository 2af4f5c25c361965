"""Run the Falcon app under gunicorn: the store is loaded once in the master
process before the workers fork, so N workers share one copy of the prices
(copy-on-write pages that nobody writes)."""
import logging

from gunicorn.app.base import BaseApplication

log = logging.getLogger(__name__)

WORKER_CLASSES = {
    "meinheld": "meinheld.gmeinheld.MeinheldWorker",
    "sync": "sync",
}


class _PreloadedApplication(BaseApplication):
    """A gunicorn application whose WSGI app already exists (built before fork)."""

    def __init__(self, wsgi_app, options):
        self._wsgi_app = wsgi_app
        self._options = options
        super().__init__()

    def load_config(self):
        for key, value in self._options.items():
            self.cfg.set(key, value)

    def load(self):
        return self._wsgi_app


def check_worker_class(worker_class):
    """Fail early, with the fix, when the meinheld worker cannot load.

    NOTE: when a meinheld worker fails to boot, gunicorn's arbiter dies in
    meinheld's own log call (``_error() got an unexpected keyword argument
    'exc_info'``); importing here first gives the real cause instead.
    """
    if worker_class == "meinheld":
        try:
            import meinheld.gmeinheld  # noqa: F401
        except ImportError as exc:
            raise SystemExit(
                f"error: the meinheld worker does not load ({exc}); install it with "
                "`sh docker/install.sh` or choose --worker-class sync"
            ) from exc


def run_gunicorn(wsgi_app, config):
    """Serve ``wsgi_app`` on ``config.json_addr`` until SIGINT/SIGTERM."""
    check_worker_class(config.worker_class)
    options = {
        "bind": config.json_addr,
        "workers": config.workers,
        "worker_class": WORKER_CLASSES[config.worker_class],
        "loglevel": config.log_level,
        "accesslog": None,
        "control_socket_disable": True,
        "graceful_timeout": 5,
        "proc_name": "ercot-fast",
    }
    _PreloadedApplication(wsgi_app, options).run()
