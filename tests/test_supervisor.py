"""The generic supervisor of the master's forked children: readiness, stop,
crash restart, revival after a deliberate stop, and start errors. The children
here are small targets of this file, not the Flight server."""
import os
import signal
import time
from pathlib import Path

import pytest

from ercot_fast.errors import ChildStartError
from ercot_fast.serve.supervisor import ChildCall, Supervisor


def serve_tag(child, tag):
    """A child that is ready at once, says ``tag``, and runs until stopped."""
    child.ready(tag)
    child.wait_for_stop()


def fail_to_start(child, reason):
    raise OSError(reason)


def alive(pid):
    try:
        done, _ = os.waitpid(pid, os.WNOHANG)
    except ChildProcessError:
        return False
    return done == 0


@pytest.fixture
def supervisor():
    made = []

    def make(target):
        made.append(Supervisor("test child", target))
        return made[-1]

    yield make
    for sup in made:
        sup.stop(timeout=5)


def test_start_waits_for_ready_and_stop_ends_the_child(supervisor):
    sup = supervisor(serve_tag)
    pid = sup.start("first")
    assert sup.pid == pid and sup.detail == "first" and alive(pid)
    sup.stop(timeout=5)
    assert sup.pid is None
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)  # reaped, gone


def test_a_crashed_child_is_restarted_with_the_same_arguments(supervisor):
    sup = supervisor(serve_tag)
    first = sup.start("data")
    os.kill(first, signal.SIGKILL)
    deadline = time.monotonic() + 10
    while (sup.pid in (None, first)) and time.monotonic() < deadline:
        sup.keep_alive()  # the arbiter calls this from its main loop
        time.sleep(0.02)
    assert sup.pid not in (None, first) and sup.detail == "data" and alive(sup.pid)


def test_the_master_is_told_when_a_child_serves_and_ends_and_the_child_is_named():
    changes = []
    sup = Supervisor("test child", serve_tag, title="ercot-test", on_change=changes.append)
    try:
        first = sup.start("data")
        assert changes == [True]
        assert Path(f"/proc/{first}/comm").read_text().strip() == "ercot-test"
        os.kill(first, signal.SIGKILL)
        deadline = time.monotonic() + 10
        while (sup.pid in (None, first)) and time.monotonic() < deadline:
            sup.keep_alive()
            time.sleep(0.02)
        assert changes == [True, False, True]  # died, restarted
        sup.stop(timeout=5)
        assert changes == [True, False, True, False]
    finally:
        sup.stop(timeout=5)


def test_a_child_stopped_on_purpose_is_not_restarted_until_revived(supervisor):
    sup = supervisor(serve_tag)
    pid = sup.start("data")
    os.kill(pid, signal.SIGTERM)  # exits 0: someone stopped it
    deadline = time.monotonic() + 5
    while sup.pid is not None and time.monotonic() < deadline:
        sup.keep_alive()
        time.sleep(0.02)
    for _ in range(10):
        sup.keep_alive()
    assert sup.pid is None
    sup.revive()  # what SIGHUP does
    assert sup.pid not in (None, pid) and sup.detail == "data" and alive(sup.pid)


def test_a_child_that_cannot_start_says_why(supervisor):
    sup = supervisor(fail_to_start)
    with pytest.raises(ChildStartError) as caught:
        sup.start("port 1 is taken", timeout=10)
    assert caught.value.message == "test child cannot start" and caught.value.details == "port 1 is taken"
    assert sup.pid is None


# --- one-shot children (a reload's load) ---------------------------------------------


def slow_sum(a, b, seconds):
    time.sleep(seconds)
    return {"sum": a + b, "pid": os.getpid()}


def crash():
    import faulthandler

    faulthandler.disable()  # pytest's would print the child's stack
    os.kill(os.getpid(), signal.SIGSEGV)  # as a decoder crashing on a corrupt file would


def test_a_child_call_runs_beside_the_caller_and_returns_its_result():
    call = ChildCall(slow_sum, 2, 3, 0.5)
    assert call.result() is None  # still working: the caller goes on with its own work
    deadline = time.monotonic() + 10
    while (answer := call.result()) is None:
        assert time.monotonic() < deadline
        time.sleep(0.02)
    assert answer["sum"] == 5 and answer["pid"] not in (os.getpid(), None)
    assert not alive(answer["pid"])


@pytest.mark.parametrize("function, args, message, details", [
    (fail_to_start, (None, "disk on fire"), "fail_to_start failed", "disk on fire"),
    (crash, (), "crash gave no answer", "was killed by SIGSEGV"),
])
def test_a_child_call_that_fails_says_why(function, args, message, details):
    call = ChildCall(function, *args)
    deadline = time.monotonic() + 10
    with pytest.raises(ChildStartError) as caught:
        while call.result() is None:
            assert time.monotonic() < deadline
            time.sleep(0.02)
    assert caught.value.message == message and caught.value.details == details


def test_a_child_call_can_be_cancelled():
    call = ChildCall(slow_sum, 1, 1, 60)
    call.cancel()
    assert not alive(call.pid)


def test_a_child_call_dies_with_its_master():
    """A reload's loader must not outlive a master killed with SIGKILL (it would
    hold the HTTP port, inherited, until its load ended)."""
    import subprocess
    import sys

    master = subprocess.Popen(
        [sys.executable, "-c", "import time\nfrom ercot_fast.serve.supervisor import ChildCall\n"
         "call = ChildCall(time.sleep, 60)\nprint(call.pid, flush=True)\ntime.sleep(60)"],
        stdout=subprocess.PIPE, text=True,
    )
    loader = int(master.stdout.readline())
    master.kill()
    master.wait()
    deadline = time.monotonic() + 10
    while Path(f"/proc/{loader}").exists() and "Z" not in Path(f"/proc/{loader}/stat").read_text().split(")")[1][:3]:
        assert time.monotonic() < deadline, "the loader outlived its master"
        time.sleep(0.05)
