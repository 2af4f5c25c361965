"""The per-request time limit of the HTTP API (``--request-timeout``): an
answer that is still being computed when it runs out is abandoned with a
503 that says what to ask for instead, and the worker goes on serving.

A timer signal (SIGALRM) interrupts the Python code computing the answer
(rendering, compressing); the compiled kernels between two Python steps take
microseconds. meinheld's greenlets and the sync worker compute answers in
the worker's main thread, one at a time, so a process-wide timer is the
request's own; gunicorn's threaded worker (HTTPS) answers in other threads,
where the signal cannot be handled: there only gunicorn's worker timeout
bounds a request. The prices resource sets no timer for an answer of few
prices (``resources.UNTIMED_CELLS``): two system calls would cost more than
making it.
"""
import signal
import threading

from ercot_fast.errors import RequestTimeoutError


class Deadline:
    """``with deadline:`` bounds the block to ``seconds`` (0 or None: no
    limit); a ``with`` inside another one is bounded by the outer one."""

    def __init__(self, seconds):
        self._depth = 0
        self._armed = False
        self.seconds = seconds or 0
        if self.seconds and threading.current_thread() is threading.main_thread():
            signal.signal(signal.SIGALRM, self._expired)
        else:
            self.seconds = 0  # NOTE: signals reach only the main thread: no limit where the handler cannot be set

    def __enter__(self):
        self._depth += 1
        # NOTE: only in the main thread, where the signal is handled: a threaded
        # worker's (gthread, over TLS) requests run elsewhere, unbounded
        if self.seconds and self._depth == 1 and threading.current_thread() is threading.main_thread():
            self._armed = True
            signal.setitimer(signal.ITIMER_REAL, self.seconds)
        return self

    def __exit__(self, *exc_info):
        self._depth -= 1
        if self._armed and self._depth == 0:
            self._armed = False
            signal.setitimer(signal.ITIMER_REAL, 0)

    def _expired(self, signum, frame):
        raise RequestTimeoutError(
            f"the answer took longer than {self.seconds:g} s to compute (the request time limit)",
            "ask for a shorter range or fewer settlement points, an aggregate, or use Arrow Flight for bulk pulls",
        )
