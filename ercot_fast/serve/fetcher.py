"""``serve --fetch``: the fetcher (``ercot_fast.fetch``) as a supervised child
of the master (``serve.supervisor``), restarted if it crashes and stopped with
the service. After each run that changed files of the data directory it sends
the master SIGHUP, which reloads the store in place (with ``--reload-interval``
as well, that reload finds nothing more to do). Its counts go to ``/metrics``.
"""
import logging
import os
import signal
import time

from ercot_fast import fetch
from ercot_fast.fetch import archive

log = logging.getLogger(__name__)

_STOP_SIGNALS = frozenset((signal.SIGTERM, signal.SIGINT))


def serve(child, data_dir, settings, counters=None):
    """The fetch child's target: fetch every ``settings.interval`` seconds
    until stopped. Stop signals are blocked in the child (``Child``): one that
    came during a run is seen between documents, and ends it."""
    archive.Credentials.from_environ(os.environ)  # only some set: the fetcher does not start, saying which
    if counters is not None:
        counters.start()
    child.ready(f"fetching {', '.join(settings.reports)} every {settings.interval:g} s")
    master = os.getppid()

    def after(summary):
        if counters is not None:
            count(counters, summary)
        if summary.files_written:
            log.info("fetch wrote %d files: asking the master (pid %d) to reload", summary.files_written, master)
            os.kill(master, signal.SIGHUP)

    fetch.watch(data_dir, settings, after, wait=lambda seconds: child.wait_for_stop(seconds) is not None,
                should_stop=lambda: bool(signal.sigpending() & _STOP_SIGNALS))
    if counters is not None:
        counters.write()


def count(counters, summary):
    """Count one run for /metrics (``metrics.exposition``)."""
    counters.add(("ercot_fast_fetch_runs", (("outcome", "ok" if summary.ok else "failed"),)))
    for outcome, number in (("fetched", summary.fetched), ("corrupt", len(summary.corrupt))):
        if number:
            counters.add(("ercot_fast_fetch_documents", (("outcome", outcome),)), number)
    counters.add(("ercot_fast_fetch_failures", ()), len(summary.failed))
    counters.add(("ercot_fast_fetch_bytes", ()), summary.bytes)
    counters.add(("ercot_fast_fetch_values", (("change", "added"),)), summary.added)
    counters.add(("ercot_fast_fetch_values", (("change", "changed"),)), summary.changed)
    if summary.ok:
        counters.set(("ercot_fast_fetch_last_success_timestamp_seconds", ()), round(time.time(), 3))
    counters.write()
