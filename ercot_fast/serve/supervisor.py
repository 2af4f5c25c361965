"""Forked children of the master: supervised ones that serve (the Arrow Flight
server, the gRPC health service), started with a readiness handshake, stopped,
reaped, restarted after a crash with back-off and started again on demand
after a deliberate stop; and one-shot ones (``ChildCall``: a reload's load),
whose memory and crashes stay out of the master.

A child is known only by its target function, ``target(child, *args)``, run in
the forked process: it calls ``child.ready(detail)`` once it serves (or raises,
and the error reaches the master), then ``child.wait_for_stop()``, then cleans
up and returns. Children fork from the master after the store is loaded, so
they share its pages copy-on-write; threads (gRPC's) start only in a child,
never in a process that forks.
"""
import errno
import json
import logging
import os
import select
import signal
import sys
import time

from ercot_fast.errors import ChildStartError

log = logging.getLogger(__name__)

_STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT)
_PR_SET_PDEATHSIG = 1
_PR_SET_NAME = 15
# the master's (gunicorn's) handlers a child must not keep
_MASTER_SIGNALS = (
    signal.SIGCHLD, signal.SIGQUIT, signal.SIGTTIN, signal.SIGTTOU, signal.SIGUSR1, signal.SIGUSR2, signal.SIGWINCH,
)


class Child:
    """The forked child's side: tell the master it serves, wait to be stopped."""

    def __init__(self, name, ready_fd):
        self.name = name
        self._ready_fd = ready_fd

    def ready(self, detail=""):
        os.write(self._ready_fd, f"ok {detail}".encode())
        os.close(self._ready_fd)
        self._ready_fd = None

    def wait_for_stop(self, timeout=None):
        """Block until SIGTERM or SIGINT and return the signal's name, or
        return None after ``timeout`` seconds without one."""
        if timeout is None:
            received = signal.sigwait(_STOP_SIGNALS)
        else:
            info = signal.sigtimedwait(_STOP_SIGNALS, timeout)
            if info is None:
                return None
            received = info.si_signo
        name = signal.Signals(received).name
        log.info("%s (pid %d) stopping on %s", self.name, os.getpid(), name)
        return name

    @property
    def is_ready(self):
        return self._ready_fd is None

    def failed(self, exc):
        """Tell the master why the child could not start."""
        os.write(self._ready_fd, f"error {exc}".encode())
        os.close(self._ready_fd)
        self._ready_fd = None


class Supervisor:
    """One supervised child process, owned by the master that started it."""

    RESTART_DELAYS = (0, 1, 2, 5, 10, 30, 60)  # seconds, after quick crashes
    STABLE_SECONDS = 60  # a child that ran this long restarts without delay

    def __init__(self, name, target, title=None, on_change=None):
        """``title``: the child's process name (``ps``, ``/proc/PID/comm``, at
        most 15 bytes); ``on_change(running)``: called in the master when a
        child becomes ready (True) and when it exits or is stopped (False)."""
        self.name = name
        self.target = target
        self.title = title
        self._on_change = on_change or (lambda running: None)
        self.args = ()
        self.pid = None
        self.detail = None  # what the child said when ready (e.g. its port)
        self._owner = os.getpid()
        self._started_at = 0.0
        self._crashes = 0
        self._restart_at = None  # monotonic time of a pending restart
        self._retiring = []  # stopped children not yet reaped

    def start(self, *args, timeout=30.0):
        """Fork the child over ``args`` and wait until it is ready. Retries
        while a child that is shutting down still holds what the new one
        needs (a port), then raises ChildStartError."""
        self.args = args
        deadline = time.monotonic() + timeout
        while True:
            try:
                return self._start_once(deadline)
            except ChildStartError:
                self._reap_retiring()
                if time.monotonic() >= deadline or not self._retiring:
                    raise
                time.sleep(0.05)

    def _start_once(self, deadline):
        read_fd, write_fd = os.pipe()
        sys.stdout.flush()
        sys.stderr.flush()
        pid = os.fork()
        if pid == 0:  # the child never returns into the master's code
            os.close(read_fd)
            os._exit(_run_child(self.name, self.target, self.args, self._owner, write_fd, self.title))
        os.close(write_fd)
        try:
            message = _read_message(read_fd, deadline)
        except BaseException:  # Ctrl-C while it starts: a child that never served goes at once
            _signal(pid, signal.SIGKILL)
            self._retiring.append(pid)  # reaped by stop()
            raise
        finally:
            os.close(read_fd)
        if not message.startswith("ok"):
            self._wait(pid, max(0.0, deadline - time.monotonic()))
            raise ChildStartError(f"{self.name} cannot start", message.removeprefix("error ") or "no answer")
        self.pid, self.detail = pid, message[3:]
        self._started_at = time.monotonic()
        self._on_change(True)
        return pid

    def stop(self, timeout=10.0):
        """SIGTERM the child and wait for it (SIGKILL after ``timeout``).
        A no-op outside the master (gunicorn workers inherit this object)."""
        if os.getpid() != self._owner:
            return
        self._retire()
        deadline = time.monotonic() + timeout
        for pid in self._retiring:
            self._wait(pid, max(0.0, deadline - time.monotonic()))
        self._retiring.clear()
        self._restart_at = None

    def revive(self):
        """Start the child again if it is not running (after someone stopped
        it on purpose, which ``keep_alive`` respects)."""
        if os.getpid() != self._owner or self.pid is not None:
            return
        self._restart_at = None
        try:
            self.start(*self.args)
        except ChildStartError as exc:
            log.error("%s: %s; retrying", exc.message, exc.details)
            self._schedule_restart()

    def reap(self):
        """Collect an exited child before gunicorn's ``waitpid(-1)`` does (it
        would take the exit status silently); schedule a restart after a crash."""
        self._reap_retiring()
        if self.pid is None:
            return
        try:
            pid, status = os.waitpid(self.pid, os.WNOHANG)
        except ChildProcessError:  # reaped elsewhere: the status is lost
            pid, status = self.pid, None
        if pid == 0:
            return
        self.pid = None
        self._on_change(False)
        if status is not None and os.WIFEXITED(status) and os.WEXITSTATUS(status) == 0:
            # NOTE: like systemd's Restart=on-failure: someone stopped it on purpose
            log.warning("%s (pid %d) was stopped; SIGHUP the master to start it again", self.name, pid)
            return
        if time.monotonic() - self._started_at >= self.STABLE_SECONDS:
            self._crashes = 0
        log.error("%s (pid %d) %s; restarting it", self.name, pid, _describe_status(status))
        self._schedule_restart()

    def keep_alive(self):
        """Restart a crashed child when its back-off delay has passed."""
        if os.getpid() != self._owner:
            return
        self.reap()
        if self.pid is None and self._restart_at is not None and time.monotonic() >= self._restart_at:
            self._restart_at = None
            try:
                self.start(*self.args, timeout=10.0)
            except ChildStartError as exc:
                log.error("%s: %s; retrying", exc.message, exc.details)
                self._schedule_restart()

    def _retire(self):
        """SIGTERM the running child; it is reaped later, as a retiring one."""
        if self.pid is not None:
            _signal(self.pid, signal.SIGTERM)
            self._retiring.append(self.pid)
            self.pid = None
            self._on_change(False)

    def _schedule_restart(self):
        """Restart at once after the first crash, then back off."""
        delay = self.RESTART_DELAYS[min(self._crashes, len(self.RESTART_DELAYS) - 1)]
        self._crashes += 1
        self._restart_at = time.monotonic() + delay

    def _reap_retiring(self):
        for pid in list(self._retiring):
            try:
                done, _ = os.waitpid(pid, os.WNOHANG)
            except ChildProcessError:
                done = pid
            if done:
                self._retiring.remove(pid)

    def _wait(self, pid, timeout):
        """Wait for ``pid`` to exit; SIGKILL it after ``timeout``."""
        deadline = time.monotonic() + timeout
        killed = False
        while True:
            try:
                done, _ = os.waitpid(pid, os.WNOHANG)
            except ChildProcessError:
                return
            if done:
                return
            if time.monotonic() >= deadline:
                if killed:
                    log.error("%s (pid %d) survives SIGKILL; giving up on it", self.name, pid)
                    return
                log.warning("%s (pid %d) did not stop in time: killed", self.name, pid)
                _signal(pid, signal.SIGKILL)
                killed, deadline = True, time.monotonic() + 5
            time.sleep(0.02)


class ChildCall:
    """``function(*args)`` run in a forked child, for work whose memory (or
    crash) the master must not keep; the master goes on with its own work and
    asks ``result()`` from time to time. The child's memory goes back to the
    system when it exits."""

    def __init__(self, function, *args):
        self.name = getattr(function, "__name__", "child")
        read_fd, write_fd = os.pipe()
        sys.stdout.flush()
        sys.stderr.flush()
        master = os.getpid()
        pid = os.fork()
        if pid == 0:
            os.close(read_fd)
            _call_and_exit(function, args, write_fd, master)
        os.close(write_fd)
        os.set_blocking(read_fd, False)
        self.pid, self._fd, self._chunks = pid, read_fd, []

    def result(self):
        """None while the child works; then its JSON-able result, or
        ChildStartError saying why there is none (an exception, a signal)."""
        while True:
            try:
                chunk = os.read(self._fd, 1 << 16)
            except BlockingIOError:
                return None
            if not chunk:
                break
            self._chunks.append(chunk)
        os.close(self._fd)
        status = self._reap()
        if not self._chunks:
            raise ChildStartError(f"{self.name} gave no answer", _describe_status(status))
        message = json.loads(b"".join(self._chunks))
        if "error" in message:
            raise ChildStartError(f"{self.name} failed", message["error"])
        return message["result"]

    def cancel(self):
        """Stop the child (the master is stopping) and reap it."""
        _signal(self.pid, signal.SIGKILL)
        os.close(self._fd)
        self._reap()

    def _reap(self):
        try:
            _, status = os.waitpid(self.pid, 0)
        except ChildProcessError:  # gunicorn's SIGCHLD handler reaped it first: the status is lost
            status = None
        return status


def _call_and_exit(function, args, write_fd, master_pid):
    """The forked child of a ChildCall: never returns."""
    code = 1
    try:
        _forget_the_master(write_fd)
        for sig in (signal.SIGHUP, signal.SIGTERM, signal.SIGINT):
            signal.signal(sig, signal.SIG_DFL)
        if os.getppid() != master_pid:  # the master died before prctl took effect
            return
        try:
            message = {"result": function(*args)}
        except Exception as exc:
            log.exception("%s failed", getattr(function, "__name__", "child"))
            message = {"error": str(exc)}
        os.write(write_fd, json.dumps(message).encode())
        code = 0
    finally:
        logging.shutdown()
        os._exit(code)


def _run_child(name, target, args, master_pid, ready_fd, title=None):
    """The forked child's whole life; returns its exit code."""
    child = Child(name, ready_fd)
    code = 1
    try:
        _reset_inherited_state(ready_fd)
        if title:
            _set_process_name(title)
        if os.getppid() != master_pid:  # the master died before prctl took effect
            return 0
        try:
            target(child, *args)
            code = 0
        except Exception as exc:
            if child.is_ready:
                raise
            child.failed(exc)  # the master reports it
    except BaseException:
        log.exception("%s (pid %d) failed", name, os.getpid())
    finally:
        logging.shutdown()
    return code


def _reset_inherited_state(ready_fd):
    """Undo what the fork copied from the master (``_forget_the_master``).
    Stop signals are blocked before the target starts threads (they inherit
    the mask) and taken by ``Child.wait_for_stop``."""
    _forget_the_master(ready_fd)
    signal.signal(signal.SIGHUP, signal.SIG_IGN)  # reloads are the master's: the child follows them itself
    signal.pthread_sigmask(signal.SIG_BLOCK, _STOP_SIGNALS)


def _forget_the_master(keep_fd):
    """In a forked child: drop gunicorn's signal handlers, die with the
    master, and close every inherited descriptor but ``keep_fd``.
    NOTE: an inherited listener would keep the HTTP port after the master exits."""
    signal.set_wakeup_fd(-1)
    for sig in _MASTER_SIGNALS:
        signal.signal(sig, signal.SIG_DFL)
    _die_with_parent()
    os.closerange(3, keep_fd)
    os.closerange(keep_fd + 1, _max_fd())


def _die_with_parent():
    """Linux: SIGTERM this process when the master dies, even by SIGKILL."""
    try:
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0)
    except (OSError, AttributeError):  # not Linux: the master's stop() still ends it
        pass


def _set_process_name(title):
    """Linux: name this process (``ps -o comm``, ``/proc/PID/comm``) so an
    operator tells the children apart."""
    try:
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(_PR_SET_NAME, ctypes.c_char_p(title.encode()[:15]), 0, 0, 0)
    except (OSError, AttributeError):
        pass


def _max_fd():
    try:
        return os.sysconf("SC_OPEN_MAX")
    except (ValueError, OSError):
        return 4096


def _read_message(fd, deadline):
    """The child's one-line readiness message ('' when it died silently)."""
    chunks = []
    while True:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            return "error no answer in time"
        ready, _, _ = select.select([fd], [], [], remaining)
        if not ready:
            continue
        chunk = os.read(fd, 4096)
        if not chunk:
            return b"".join(chunks).decode("utf-8", "replace")
        chunks.append(chunk)


def _signal(pid, sig):
    try:
        os.kill(pid, sig)
    except OSError as exc:
        if exc.errno != errno.ESRCH:
            raise


def _describe_status(status):
    if status is None:
        return "exited"
    if os.WIFSIGNALED(status):
        return f"was killed by {signal.Signals(os.WTERMSIG(status)).name}"
    return f"exited with code {os.waitstatus_to_exitcode(status)}"
