"""The store held once for every process, and swapped in place on a reload.

The master publishes: it writes each store it loads as a snapshot
(``store.snapshot``) into a runtime folder, then a small state file naming the
current snapshot, the master's problems (a refused or failed reload), the
digests of the accepted API keys (``access.keys``) and its status (draining
on SIGTERM, whether the Flight child serves), then bumps a
generation counter: eight bytes in a memory-mapped file. Every serving
process (HTTP workers, the Flight child) follows: before each request it reads
the counter, and when it has moved it opens the current snapshot and swaps to
it. Requests in flight finish on the store they started with; no process
restarts, no connection closes, so a reload loses no request.

Memory: the prices are in the page cache once, mapped by every process. While
a reload is under way its loader (a child of the master) holds the new store
as it loads and writes it, and until every process has swapped, the old
snapshot stays mapped too: about twice the store, briefly.
"""
import json
import logging
import mmap
import os
import shutil
import tempfile
import threading
import time
from pathlib import Path

from ercot_fast.files import write_atomically
from ercot_fast.store import snapshot

log = logging.getLogger(__name__)

_GENERATION = "generation"
_STATE = "state.json"
_KEEP = 2  # snapshots kept: the current one and the one before (processes may still be opening it)
_PREFIX = "ercot-fast-"  # then the master's pid: ercot-fast-<pid>-<random>
# the master's status, as every process sees it (``Publisher.set_status``)
DRAINING = "draining"  # SIGTERM with --drain-seconds: stopping soon, still serving
FLIGHT_SERVING = "flight_serving"  # the Flight child is up (started, not died since)
_STATUS = {DRAINING: False, FLIGHT_SERVING: False}


def _remove_orphans(parent):
    """Remove the runtime folders of masters that are gone without cleaning up
    (killed by SIGKILL, or the machine stopped): their pid no longer exists."""
    for folder in parent.glob(f"{_PREFIX}*-*"):
        pid = folder.name[len(_PREFIX):].split("-", 1)[0]
        if not pid.isdigit() or not (folder / _GENERATION).exists():
            continue  # not one of ours
        try:
            os.kill(int(pid), 0)
        except ProcessLookupError:
            log.info("removed %s, left by an ercot-fast serve that is gone (pid %s)", folder, pid)
            shutil.rmtree(folder, ignore_errors=True)
        except (PermissionError, OverflowError):  # alive as another user's process, or not a pid
            pass


class Publisher:
    """The master's side: owns the runtime folder and publishes into it."""

    def __init__(self, parent=None):
        _remove_orphans(Path(parent or tempfile.gettempdir()))
        self.directory = Path(tempfile.mkdtemp(prefix=f"{_PREFIX}{os.getpid()}-", dir=parent))
        self._generation = 0
        self._snapshots = []
        path = self.directory / _GENERATION
        path.write_bytes(bytes(8))
        with open(path, "r+b") as f:
            self._counter = mmap.mmap(f.fileno(), 8)
        self.problems = ()
        self.api_keys = {}
        self.status = dict(_STATUS)

    def publish(self, store, problems=()):
        """Serve ``store`` from now on (the processes map it from its files).

        NOTE: the publisher keeps no store: the master serves through a
        Follower like every other process, so a forked process holds only
        the store its own Follower maps, never one inherited and forgotten."""
        self.adopt(snapshot.write(store, self.reserve()), problems)

    def reserve(self):
        """The folder the next snapshot is to be written in (by this process or a child)."""
        return self.directory / f"store-{self._generation + 1}"

    def adopt(self, folder, problems=()):
        """Serve the snapshot written in ``folder`` (``reserve()``'s) from now on."""
        self._generation += 1
        self._snapshots.append(Path(folder))
        self._announce(problems)
        for old in self._snapshots[:-_KEEP]:
            shutil.rmtree(old, ignore_errors=True)  # NOTE: a process that mapped it keeps its pages
        self._snapshots = self._snapshots[-_KEEP:]

    def set_problems(self, problems):
        """Keep the store; tell every process the master's problems (and what
        else it publishes: keys, status) changed."""
        self._generation += 1
        self._announce(problems)

    def set_api_keys(self, digests):
        """Keep the store; tell every process the accepted keys ({name: digest}) changed."""
        self.api_keys = dict(digests)
        if self._snapshots:  # NOTE: before the first store, publish() announces them
            self.set_problems(self.problems)

    def set_status(self, **changes):
        """Keep the store and problems; tell every process the master's status
        changed (``DRAINING``, ``FLIGHT_SERVING``: True or False)."""
        unknown = set(changes) - set(_STATUS)
        if unknown:
            raise ValueError(f"unknown status {', '.join(sorted(unknown))}")
        if all(self.status[name] == value for name, value in changes.items()):
            return
        self.status.update(changes)
        self.set_problems(self.problems)

    def _announce(self, problems):
        self.problems = tuple(problems)
        state = {"snapshot": self._snapshots[-1].name, "problems": list(self.problems), "api_keys": self.api_keys,
                 "status": self.status}
        write_atomically(self.directory / _STATE, json.dumps(state).encode())
        self._counter[:8] = self._generation.to_bytes(8, "little")

    def follower(self):
        """A Follower of what was published last, its store mapped (processes
        forked later inherit it and follow on their own)."""
        current = self._snapshots[-1]
        return Follower(self.directory, snapshot.open_store(current), self.problems, self._generation, current.name,
                        self.status, self.api_keys)

    def close(self):
        self._counter.close()
        shutil.rmtree(self.directory, ignore_errors=True)


class Follower:
    """A serving process's side: the current store, problems, API keys and status,
    refreshed when the master's generation moves. Thread-safe (Flight serves
    calls on several threads)."""

    RETRY_SECONDS = 1.0  # after a failed refresh, try again at most this often

    def __init__(self, directory, store, problems, generation, snapshot_name, status=None, api_keys=None):
        self.directory = Path(directory)
        self.store = store
        self.problems = tuple(problems)
        self.status = {**_STATUS, **(status or {})}
        self.api_keys = dict(api_keys or {})
        self.generation = generation
        self._snapshot = snapshot_name
        self._failed_at = 0.0
        self._lock = threading.Lock()
        with open(self.directory / _GENERATION, "rb") as f:
            self._counter = mmap.mmap(f.fileno(), 8, access=mmap.ACCESS_READ)

    def changed(self):
        """True when the master has published since this process last looked.
        PERF: one read of eight mapped bytes."""
        return int.from_bytes(self._counter[:8], "little") != self.generation

    @property
    def draining(self):
        """True once the master drains (SIGTERM with --drain-seconds)."""
        return self.status[DRAINING]

    @property
    def flight_serving(self):
        """True while the master's Flight child serves."""
        return self.status[FLIGHT_SERVING]

    def refresh(self):
        """Follow the master: returns True when the store, problems or API keys changed
        (what a serving process rebuilds on); the status is followed too,
        without a rebuild."""
        with self._lock:
            latest = int.from_bytes(self._counter[:8], "little")
            if latest == self.generation or time.monotonic() - self._failed_at < self.RETRY_SECONDS:
                return False
            try:
                state = json.loads((self.directory / _STATE).read_text())
                changed = (state["snapshot"] != self._snapshot or tuple(state["problems"]) != self.problems
                           or state["api_keys"] != self.api_keys)
                if state["snapshot"] != self._snapshot:
                    self.store = snapshot.open_store(self.directory / state["snapshot"])
                    self._snapshot = state["snapshot"]
            except (OSError, ValueError, KeyError) as exc:  # the master may be mid-publish: next time
                self._failed_at = time.monotonic()
                log.warning("process %d could not follow the new store yet (%s); still serving the one before", os.getpid(), exc)
                return False
            self.problems = tuple(state["problems"])
            self.status = {**_STATUS, **state.get("status", {})}
            self.api_keys = state["api_keys"]
            self.generation = latest
            return changed
