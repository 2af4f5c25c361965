"""The ``ercot-fast`` console script's entry: a stop signal (Ctrl-C, SIGTERM)
that comes while Python is still importing the command exits quietly, with
no traceback, as one a moment later does (``cli._StartupSignals``). Imports
nothing else before its handlers are in place."""
import signal


def _stopped(signum, frame):
    raise SystemExit(0)  # nothing was started: nothing to clean up


def main():
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, _stopped)
    from ercot_fast.cli import main as command

    command()
