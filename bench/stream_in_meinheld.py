"""Why /api/stream is not served by the meinheld workers (serve.stream): the two
ways a meinheld worker could hold an idle Server-Sent Events subscriber, tried
on the meinheld build the service runs (1.0.2 over greenlet 3).

1. Park the response in a greenlet (meinheld's continuation, ``suspend``),
   the way that would let one worker hold many subscribers: it fails.
2. Hold the response in a plain generator that waits for the next event:
   the worker then answers nothing else until the subscriber leaves, so a
   plain GET sent meanwhile waits as long (``HOLD_SECONDS``).

    python bench/stream_in_meinheld.py [--out bench/results/stream_in_meinheld.json]
"""
import argparse
import multiprocessing
import time
import urllib.error
import urllib.request

import _harness as harness

HOLD_SECONDS = 2  # an int: meinheld's suspend takes whole seconds


def _serve(port, mode):
    from meinheld import middleware, server
    from meinheld.common import CONTINUATION_KEY

    def held():
        yield b": connected\n\n"
        time.sleep(HOLD_SECONDS)  # waiting for the next reload
        yield b"data: {}\n\n"

    def app(environ, start_response):
        if environ["PATH_INFO"] != "/api/stream":
            start_response("200 OK", [("content-type", "text/plain")])
            return [b"ok"]
        if mode == "suspend":
            environ[CONTINUATION_KEY].suspend(HOLD_SECONDS)
        start_response("200 OK", [("content-type", "text/event-stream")])
        return held()

    server.set_access_logger(None)
    server.listen((harness.HOST, port))
    server.run(middleware.ContinuationMiddleware(app))


def trial(mode):
    port = harness.free_port()
    process = multiprocessing.Process(target=_serve, args=(port, mode), daemon=True)
    process.start()
    try:
        base = f"http://{harness.HOST}:{port}"
        deadline = time.monotonic() + 10
        while True:
            try:
                harness.http_get(base + "/", timeout=1)
                break
            except OSError:
                assert time.monotonic() < deadline, "meinheld did not start"
                time.sleep(0.1)
        subscriber = urllib.request.urlopen(base + "/api/stream", timeout=10)
        if mode == "suspend":
            return {"subscriber_status": subscriber.status, "subscriber_body": subscriber.read().decode()[:80]}
        subscriber.readline()
        seconds, _ = harness.timed(lambda: harness.http_get(base + "/", timeout=10))
        return {"plain_get_seconds_while_one_subscriber_waits": round(seconds, 3), "subscriber_waits_s": HOLD_SECONDS}
    except urllib.error.HTTPError as exc:
        return {"subscriber_status": exc.code, "subscriber_body": exc.read().decode()[:80]}
    finally:
        process.terminate()
        process.join(5)


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", default=str(harness.RESULTS / "stream_in_meinheld.json"))
    args = parser.parse_args()
    import meinheld.server  # noqa: F401  (fails here, not in a child, when it is not installed)
    from importlib.metadata import version

    report = {
        "machine": harness.machine("python", meinheld=version("meinheld"), greenlet=version("greenlet")),
        "command": harness.command_line("stream_in_meinheld.py", args, skip=("out",)),
        "greenlet_suspend": trial("suspend"),
        "blocking_generator": trial("generator"),
    }
    for name in ("greenlet_suspend", "blocking_generator"):
        print(name, report[name])
    harness.write_results(args.out, report)


if __name__ == "__main__":
    main()
