"""Running `ercot-fast serve` as a user does, for the end-to-end tests: the
installed console script, 127.0.0.1, free ports, always stopped."""
import json
import os
import signal
import socket
import ssl
import subprocess
import threading
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import pyarrow.flight as flight

# the console script that `pip install` put beside this Python
ERCOT_FAST = str(Path(sys.executable).parent / "ercot-fast")


def free_port():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def fetch(url, context=None, headers=None):
    """(status, headers, body) of a GET; ``context``: the ssl.SSLContext of an https URL."""
    try:
        request = urllib.request.Request(url, headers=headers or {})
        with urllib.request.urlopen(request, timeout=10, context=context) as resp:
            return resp.status, resp.headers, resp.read()
    except urllib.error.HTTPError as err:
        return err.code, err.headers, err.read()


# the process names of the master's supervised children (serve.gunicorn): every other child is an HTTP worker
SUPERVISED = ("ercot-flight", "ercot-stream", "ercot-health")


def http_workers(master):
    """The pids of the master's HTTP workers (none once it has exited)."""
    found = []
    try:
        for task in Path(f"/proc/{master}/task").iterdir():
            for pid in (task / "children").read_text().split():
                try:
                    if Path(f"/proc/{pid}/comm").read_text().strip() not in SUPERVISED:
                        found.append(int(pid))
                except FileNotFoundError:  # it has just exited
                    pass
    except FileNotFoundError:  # the master (or a thread of it) is gone
        pass
    return found


def wait_until(predicate, what, timeout=30):
    """Poll ``predicate`` until it is true; fail with ``what`` after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, what
        time.sleep(0.1)


class Served:
    """A running `ercot-fast serve`; stop() ends it and returns its log.
    ``tls``: a throwaway_tls.ThrowawayCA whose server certificate it serves
    (https://, grpc+tls://), trusted by ``context``."""

    def __init__(self, args, env, tls=None, port=None, flight_port=None):
        self.port = port or free_port()
        self.base = f"http{'s' if tls else ''}://127.0.0.1:{self.port}"
        self.flight_port = flight_port or free_port()
        self.flight_location = f"grpc{'+tls' if tls else ''}://127.0.0.1:{self.flight_port}"
        self.stream_port = free_port()
        self.stream_base = f"http{'s' if tls else ''}://127.0.0.1:{self.stream_port}"
        self.context = None
        if tls:
            args = [*args, "--tls-cert", str(tls.cert), "--tls-key", str(tls.key)]
            self.context = ssl.create_default_context(cafile=tls.ca)
        env = {**os.environ, **env}
        for variable, flag, port in (("JSON_ADDR", "--json-addr", self.port), ("FLIGHT_ADDR", "--flight-addr", self.flight_port),
                                     ("STREAM_ADDR", "--stream-addr", self.stream_port)):
            if variable in env:  # the address comes from the environment
                env[variable] = f"127.0.0.1:{port}"
            else:
                args = [flag, f"127.0.0.1:{port}", *args]
        self.proc = subprocess.Popen(
            [ERCOT_FAST, "serve", *args],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            start_new_session=True,  # its own process group: Ctrl-C can be sent to all of it
        )
        # NOTE: read as it comes (the access log is on): a full pipe would block the server's writes
        self._output = []
        self._reader = threading.Thread(target=lambda: self._output.extend(self.proc.stdout), daemon=True)
        self._reader.start()

    def output(self):
        """What the service has written so far (stdout and stderr)."""
        return "".join(self._output)

    def wait_ready(self, timeout=120):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                self._reader.join(timeout=10)
                raise AssertionError(f"serve exited with {self.proc.returncode}:\n{self.output()}")
            try:
                return fetch(self.base + "/api/health", self.context)
            except OSError:
                time.sleep(0.2)
        raise AssertionError("serve did not answer in time")

    def flight_pid(self):
        """The pid of the Flight child, as its describe action reports it."""
        with flight.connect(self.flight_location) as client:
            client.wait_for_available(timeout=30)
            [result] = client.do_action(flight.Action("describe", b""))
            return json.loads(result.body.to_pybytes())["pid"]

    def next_flight_pid(self, old, timeout=30):
        """The pid of the Flight child that replaced ``old``."""
        deadline = time.monotonic() + timeout
        while (pid := self.flight_pid()) == old:
            assert time.monotonic() < deadline, f"Flight child {old} was not replaced"
            time.sleep(0.2)
        return pid

    def stop(self, sig=signal.SIGTERM, group=False):
        """Send ``sig`` to the master (or, like Ctrl-C in a terminal, to its
        whole process group) and wait; SIGKILL everything after 30 s."""
        if self.proc.poll() is None:
            if group:
                os.killpg(self.proc.pid, sig)
            else:
                self.proc.send_signal(sig)
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.kill_all()
        self._reader.join(timeout=30)
        return self.output()

    def kill_all(self):
        try:
            os.killpg(self.proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        self.proc.wait()


class Load:
    """Keep-alive HTTP load for chaos tests: ``connections`` threads, each on
    its own persistent connection, cycling through ``paths`` until stopped.
    A request that fails (no answer, a broken connection, a 5xx) is counted
    and its connection opened again; every answer's status is counted."""

    def __init__(self, port, paths, connections=16, context=None):
        import collections
        import threading

        self.port = port
        self.context = context  # an ssl.SSLContext: HTTPS
        self.paths = list(paths)
        self.statuses = collections.Counter()
        self.failures = []  # (path, what went wrong)
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._threads = [threading.Thread(target=self._run, args=(i,), daemon=True) for i in range(connections)]

    def __enter__(self):
        for thread in self._threads:
            thread.start()
        return self

    def __exit__(self, *exc_info):
        self.stop()

    def stop(self):
        self._stop.set()
        for thread in self._threads:
            thread.join(timeout=30)

    @property
    def answered(self):
        with self._lock:
            return sum(self.statuses.values())

    def wait_for(self, answers, timeout=60):
        """Until at least ``answers`` more requests have been answered."""
        target = self.answered + answers
        deadline = time.monotonic() + timeout
        while self.answered < target:
            assert time.monotonic() < deadline, f"only {self.answered} answers; failures: {self.failures[:5]}"
            time.sleep(0.01)

    def _run(self, number):
        import http.client

        connection = None
        i = number
        while not self._stop.is_set():
            path = self.paths[i % len(self.paths)]
            i += 1
            try:
                if connection is None:
                    connection = (http.client.HTTPSConnection("127.0.0.1", self.port, timeout=30, context=self.context)
                                  if self.context else http.client.HTTPConnection("127.0.0.1", self.port, timeout=30))
                connection.request("GET", path)
                resp = connection.getresponse()
                body = resp.read()
                if resp.status >= 500 or len(body) != int(resp.headers.get("content-length", len(body))):
                    raise OSError(f"{resp.status} with {len(body)} bytes")
                with self._lock:
                    self.statuses[resp.status] += 1
                if resp.headers.get("connection", "").lower() == "close":
                    connection.close()
                    connection = None
            except (OSError, http.client.HTTPException) as exc:
                with self._lock:
                    self.failures.append((path, f"{type(exc).__name__}: {exc}"))
                if connection is not None:
                    connection.close()
                connection = None
        if connection is not None:
            connection.close()
