"""This process's counters, and those of every process of the service.

PERF: counting is a dict update in the process that counts: no lock, no
system call, nothing shared on the request path. Each process writes what
it has counted to its own file in the metrics folder (of the runtime folder)
once a second and when it exits; a scrape adds up every process's file (its
own live counts instead of its file). The files of processes that are gone
stay: their counts go on being added, so totals never go down when a worker
is replaced; a process killed with SIGKILL loses at most its last second.
Gauges (``set``) are added up over the processes alive only.

A series is ``(name, labels)``, ``labels`` a tuple of (label, value) pairs;
histograms are series too: ``(name, labels)`` -> [bucket counts..., sum].
"""
import atexit
import bisect
import json
import os
import threading
import time
from pathlib import Path

from ercot_fast.files import write_atomically

WRITE_SECONDS = 1.0
#: latency buckets of every duration histogram, seconds (then +Inf)
BUCKETS = (0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
_COUNT, _GAUGE, _HISTOGRAM = "counter", "gauge", "histogram"


class Counters:
    """The counts of one process, written to ``folder`` (None: kept in memory only)."""

    def __init__(self, folder=None, role="process"):
        """``role``: what the process is (``http``, ``flight``, ``master``), counted alive by it."""
        self.counts = {}  # (name, labels) -> number
        self.gauges = {}
        self.histograms = {}  # (name, labels) -> [count per bucket (the last: +Inf), sum]
        self._folder = Path(folder) if folder else None
        self._role = role
        self._pid = None
        self._before_reading = {}  # key -> account()
        self._accounting = threading.Lock()

    def add(self, series, amount=1):
        counts = self.counts
        counts[series] = counts.get(series, 0) + amount

    def set(self, series, value):
        self.gauges[series] = value

    def observe(self, series, seconds):
        buckets = self.histograms.get(series)
        if buckets is None:
            buckets = self.histograms[series] = [0] * (len(BUCKETS) + 2)
        buckets[bisect.bisect_left(BUCKETS, seconds)] += 1
        buckets[-1] += seconds

    def add_histogram(self, series, tally):
        """Add ``tally`` ([count per bucket (the last: +Inf)..., sum of seconds]) to a histogram."""
        buckets = self.histograms.get(series)
        if buckets is None:
            self.histograms[series] = list(tally)
        else:
            self.histograms[series] = [a + b for a, b in zip(buckets, tally)]

    def before_reading(self, account, key=None):
        """Have ``account()`` (which counts what was noted but not counted
        yet) run before the counts are read; one of the same ``key`` runs one
        last time and is replaced (a reload's new cache)."""
        with self._accounting:
            replaced = self._before_reading.get(key or account)
            if replaced is not None and replaced is not account:
                replaced()
            self._before_reading[key or account] = account

    def _account(self):
        with self._accounting:  # NOTE: the writer thread and a scrape: never twice at once
            for account in self._before_reading.values():
                account()

    # --- sharing --------------------------------------------------------------------------------

    def start(self, thread=True):
        """Count for this process from now on (call it in the process that
        counts: a forked child counts from zero), its file written once a
        second by a thread of its own (``thread=False``: only by ``write()``,
        as the gunicorn master does, which must not fork with a thread)."""
        if self._folder is None or self._pid == os.getpid():
            return
        self._pid = os.getpid()
        self.counts, self.gauges, self.histograms = {}, {}, {}
        self._accounting = threading.Lock()  # NOTE: not the parent's, which a fork may have copied held
        self.set(("ercot_fast_processes", (("role", self._role),)), 1)
        if thread:
            threading.Thread(target=self._write_now_and_then, name="metrics", daemon=True).start()
        atexit.register(self.write)

    def write(self):
        """Write this process's counts to its file."""
        if self._folder is None or self._pid != os.getpid():
            return
        self._account()
        state = _state(self)
        state["role"] = self._role
        try:
            # NOTE: not durable: counts matter to readers of a running service, not after a crash
            write_atomically(self._folder / f"{os.getpid()}.json", json.dumps(state).encode(), durable=False)
        except OSError:  # a full or removed runtime folder: lose the counts, never the request
            pass

    def _write_now_and_then(self):
        while True:
            time.sleep(WRITE_SECONDS)
            self.write()

    def everyone(self):
        """(counts, gauges, histograms) added up over every process's file,
        this process's live counts instead of its file."""
        self._account()
        totals = ({}, {}, {})
        mine = f"{os.getpid()}.json"
        if self._folder is not None:
            for path in self._folder.glob("*.json"):
                if path.name == mine:
                    continue
                try:
                    state = json.loads(path.read_text())
                except (OSError, ValueError):
                    continue  # mid-replace, or gone
                _merge(totals, state, alive=_alive(path.stem))
        _merge(totals, _state(self), alive=True)
        return totals


def _state(counters):
    # NOTE: dict() and list() copy in one step under the GIL, while the counting thread goes on
    return {
        _COUNT: [[name, list(labels), value] for (name, labels), value in dict(counters.counts).items()],
        _GAUGE: [[name, list(labels), value] for (name, labels), value in dict(counters.gauges).items()],
        _HISTOGRAM: [[name, list(labels), list(value)] for (name, labels), value in dict(counters.histograms).items()],
    }


def _merge(totals, state, alive):
    counts, gauges, histograms = totals
    for name, labels, value in state.get(_COUNT, ()):
        key = (name, tuple(map(tuple, labels)))
        counts[key] = counts.get(key, 0) + value
    if alive:
        for name, labels, value in state.get(_GAUGE, ()):
            key = (name, tuple(map(tuple, labels)))
            gauges[key] = gauges.get(key, 0) + value
    for name, labels, value in state.get(_HISTOGRAM, ()):
        key = (name, tuple(map(tuple, labels)))
        known = histograms.get(key)
        histograms[key] = list(value) if known is None else [a + b for a, b in zip(known, value)]


def _alive(pid):
    try:
        os.kill(int(pid), 0)
    except (ProcessLookupError, ValueError):
        return False
    except PermissionError:
        return True
    return True
