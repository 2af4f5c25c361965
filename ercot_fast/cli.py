"""The ``ercot-fast`` command: serve prices, ingest or fetch ERCOT reports, write demo data."""
import argparse
import logging
import shutil
import signal
import sys
import tempfile
import threading
from pathlib import Path

from ercot_fast import __version__, config, logs
from ercot_fast.errors import DataLoadError, IngestError

log = logging.getLogger("ercot_fast")


def ensure_demo_data(target):
    """Generate the demo data set once into ``target`` (atomically: a
    half-written set is never mistaken for a whole one)."""
    from ercot_fast import demo

    target = Path(target)
    if target.is_dir():
        log.info("serving the built-in SYNTHETIC demo data from %s", target)
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    log.info("no --data-dir given: generating SYNTHETIC demo data into %s (once)", target)
    scratch = Path(tempfile.mkdtemp(prefix=".demo-", dir=target.parent))
    try:
        demo.write_demo_data(scratch)
        scratch.rename(target)
    except OSError:
        if not target.is_dir():  # not merely a concurrent run that finished first
            raise
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    return target


class _StartupSignals:
    """Ctrl-C (SIGINT) or SIGTERM while the service starts (imports, the
    load): remembered even when a C extension's import swallows the
    KeyboardInterrupt (seen: a SIGINT half a second into a start was lost),
    and honoured before gunicorn takes the signals over."""

    def __init__(self):
        self.received = None
        for signum in (signal.SIGINT, signal.SIGTERM):
            signal.signal(signum, self._remember)

    def _remember(self, signum, frame):
        self.received = signum
        raise KeyboardInterrupt

    def check(self):
        """Exit (0, as a stop does) when a stop signal came."""
        if self.received is not None:
            log.info("stopped by %s while starting", signal.Signals(self.received).name)
            raise SystemExit(0)


def cmd_serve(args):
    startup = _StartupSignals()
    try:
        service = _start(args)
        startup.check()
        service.signal_while_starting = lambda: startup.received
        service.run()  # NOTE: the startup handlers stay until gunicorn's arbiter takes the signals (children start first)
    except KeyboardInterrupt:
        startup.check()
        raise


def _start(args):
    """The service, loaded and ready to run."""
    settings = config.serve_config(args)
    logs.setup(settings.log_level, settings.log_format)
    log.info("ercot-fast %s starting: %s", __version__, settings.describe())
    from ercot_fast import kernels

    try:
        from ercot_fast.serve import gunicorn
    except ModuleNotFoundError as exc:
        raise SystemExit(f"error: `ercot-fast serve` needs {exc.name}, which is not installed: run `sh docker/install.sh`")

    gunicorn.check_worker_class(settings.worker_class)
    log.info("kernels: %s", ", ".join(f"{k} {'compiled' if v else 'pure-Python twin'}" for k, v in kernels.COMPILED.items()))
    data_dir = settings.data_dir or ensure_demo_data(config.demo_data_dir())
    if settings.fetch is not None:
        Path(data_dir).mkdir(parents=True, exist_ok=True)  # the fetcher fills it: an empty one serves 503 until then
    try:
        service = gunicorn.PriceService(settings, data_dir)
    except DataLoadError as exc:
        raise SystemExit(f"error: {exc.message}; {exc.details}")
    except OSError as exc:  # the shared store cannot be written: a full or read-only runtime folder
        raise SystemExit(
            f"error: cannot write the store the processes share ({exc.strerror or exc}: {exc.filename}); "
            "free space there or choose another folder with --runtime-dir (or RUNTIME_DIR)"
        )
    return service


def cmd_demo_data(args):
    logs.setup("info")
    from ercot_fast import demo

    summary = demo.write_demo_data(args.directory, seed=args.seed)
    log.info("wrote SYNTHETIC demo data to %s: %s", args.directory, summary)


def cmd_ingest(args):
    logs.setup(config.setting(args.log_level, "LOG_LEVEL", "info"))
    from ercot_fast import ingest
    from ercot_fast.datadir import open_data_dir
    from ercot_fast.files import write_atomically

    data_dir = config.setting(args.data_dir, "DATA_DIR")
    if not data_dir:
        raise SystemExit("error: give --data-dir (or DATA_DIR): the folder `ercot-fast serve --data-dir` serves")
    points = None
    if args.settlement_points:
        points = [p.strip().upper() for p in args.settlement_points.split(",") if p.strip()]
    try:
        data_dir = open_data_dir(data_dir, config.setting(args.s3_endpoint, "S3_ENDPOINT"))
        report = ingest.ingest(args.paths, data_dir, settlement_points=points, progress=args.progress)
    except DataLoadError as exc:
        raise SystemExit(f"error: {exc.message}; {exc.details}")
    except IngestError as exc:
        raise SystemExit(f"error: {exc}")
    except OSError as exc:  # a full disk, a read-only folder: every file is still its old or new self
        raise SystemExit(
            f"error: ingest stopped: cannot write {exc.filename or data_dir} ({exc.strerror or exc}); "
            "every file in the data directory is as it was or complete; free space or fix the folder, then run it again"
        )
    sys.stdout.write(report.summary())
    if args.report:
        write_atomically(Path(args.report), report.dumps().encode())
        log.info("validation report written to %s", args.report)


def cmd_fetch(args):
    logs.setup(config.setting(args.log_level, "LOG_LEVEL", "info"))
    settings = config.fetch_config(args)
    data_dir = config.setting(args.data_dir, "DATA_DIR")
    config.check_fetch_data_dir(data_dir, "fetch needs")
    from ercot_fast import fetch

    log.info("fetching into %s: %s", data_dir, settings.describe())
    stop = threading.Event()  # SIGTERM or Ctrl-C: stop between two documents, nothing half-done
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, lambda *_: stop.set())
    try:
        if args.watch:
            fetch.watch(data_dir, settings, on_run=lambda summary: None, wait=stop.wait, should_stop=stop.is_set)
            log.info("fetch stopped")
            return
        summary = fetch.run(data_dir, settings, should_stop=stop.is_set)
    except fetch.FetchError as exc:
        raise SystemExit(f"error: {exc.message}; {exc.details}")
    sys.stdout.write(summary.text())
    if not summary.ok or summary.stopped:
        raise SystemExit(1)


def build_parser():
    parser = argparse.ArgumentParser(
        prog="ercot-fast",
        description="Serve ERCOT day-ahead, real-time and ancillary-service prices fast.",
    )
    parser.add_argument("--version", action="version", version=f"ercot-fast {__version__}")
    commands = parser.add_subparsers(dest="command", required=True)
    _add_serve(commands)
    _add_demo_data(commands)
    _add_ingest(commands)
    _add_fetch(commands)
    return parser


def _add_serve(commands):
    serve = commands.add_parser(
        "serve",
        help="load a data directory into memory and serve the HTTP JSON API and Arrow Flight",
        description="Load every price file of DATA_DIR into memory, then serve the HTTP JSON API "
        "with gunicorn and Arrow Flight beside it. Without a data directory, serves generated "
        "synthetic demo data.",
    )
    config.add_serve_arguments(serve)
    serve.set_defaults(func=cmd_serve)


def _add_demo_data(commands):
    demo_data = commands.add_parser(
        "demo-data",
        help="write a synthetic, seeded demo data set (2019-2024) in the reference layout",
    )
    demo_data.add_argument("directory", help="folder to write (flattened/*.parquet)")
    demo_data.add_argument("--seed", type=int, default=20190101, help="random seed (default 20190101)")
    demo_data.set_defaults(func=cmd_demo_data)


def _add_ingest(commands):
    ingest = commands.add_parser(
        "ingest",
        help="ingest ERCOT report files (CSV, ZIP, folders) into a data directory, DST-correct",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        description="Read ERCOT's own price reports and add them to DATA_DIR, which `ercot-fast serve` serves.\n"
        "Formats, recognised from the CSV header (never the file name), as CSV files, ZIP archives\n"
        "of CSVs (one per day or per interval, as ERCOT ships them) and folders of both:\n"
        "  NP4-190-CD  DAM settlement point prices (hourly)\n"
        "  NP6-905-CD  RTM settlement point prices (15-minute; LZEW rows skipped, LZ kept)\n"
        "  NP4-188-CD  DAM clearing prices for capacity (ancillary services, hourly)\n"
        "  NP4-180-ER, NP6-785-ER  the yearly historical extracts (spaced headers)\n"
        "Times become UTC instants from delivery date, hour ending, interval and DSTFlag.",
        epilog="Writes DATA_DIR/ercot_fast/<data set>/<data set>_YYYY_MM.parquet atomically; running it\n"
        "again with the same files changes nothing, new days are added and re-published days\n"
        "replace the stored values (logged). Inputs of one run that disagree: the file modified\n"
        "last wins. Rejected rows are reported with file and line, never fatal.\n"
        "Keep a service current: `ercot-fast serve --fetch` (see `ercot-fast fetch --help`), or\n"
        "re-run ingest, then `kill -HUP <pid of ercot-fast serve>`;\n"
        "the service reloads DATA_DIR in place, dropping no request (a reload that would serve\n"
        "less data is refused: see `ercot-fast serve --help`, --allow-shrink).",
    )
    ingest.add_argument("paths", nargs="+", metavar="PATH", help="report files (CSV or ZIP) or folders of them")
    ingest.add_argument(
        "--data-dir", help="data directory to write, a folder or s3://bucket/prefix (env DATA_DIR); created if missing"
    )
    config.add_storage_arguments(ingest)
    ingest.add_argument(
        "--settlement-points",
        metavar="LIST",
        help="comma-separated settlement points to keep, e.g. HB_NORTH,LZ_WEST (default: all)",
    )
    ingest.add_argument("--report", metavar="FILE", help="also write the validation report to FILE as JSON")
    ingest.add_argument(
        "--progress",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="progress bar on stderr (default: when stderr is a terminal)",
    )
    ingest.add_argument("--log-level", help="debug, info, warning or error (env LOG_LEVEL; default info)")
    ingest.set_defaults(func=cmd_ingest)


def _add_fetch(commands):
    fetch = commands.add_parser(
        "fetch",
        help="download ERCOT's newly published price reports and ingest them into a data directory",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        description="List the documents ERCOT publishes for each report, download those not fetched before,\n"
        "ingest them (as `ercot-fast ingest` does: atomic, idempotent, DST-correct) and record them in\n"
        "DATA_DIR/.fetch/manifest.json (doc id, name, publish time, size, sha256). Reports:\n"
        "  np4-190-cd  DAM Settlement Point Prices (MIS reportTypeId 12331)\n"
        "  np6-905-cd  RTM Settlement Point Prices, 15-minute (12301)\n"
        "  np4-188-cd  DAM Clearing Prices for Capacity (12329)\n"
        "From ERCOT's MIS (no account needed; it lists the last days to about a month), and with\n"
        "--since and the Public API's credentials in the environment (ERCOT_API_KEY, ERCOT_USERNAME,\n"
        "ERCOT_PASSWORD: an account at apiexplorer.ercot.com) also from its archive (from 2023-12-11;\n"
        "at most 30 requests a minute, kept to, with back-off on 429).",
        epilog="Requests time out and are retried with jittered back-off; a download is kept only when\n"
        "every byte arrived and it is a readable ZIP; a corrupt ZIP is reported, recorded and\n"
        "skipped; a document that fails to download, or comes back as no ZIP at all (an error\n"
        "page), is tried again by the next run (exit status 1, as\n"
        "after a stop by SIGTERM or Ctrl-C, which comes between two documents). A\n"
        "re-published (_retry) document replaces the prices it corrects. Each run logs one summary.\n"
        "--watch fetches every --interval seconds until SIGTERM or Ctrl-C. A running service\n"
        "picks the new files up when it reloads (SIGHUP, --reload-interval); `ercot-fast serve\n"
        "--fetch` runs this fetcher itself and signals the reload after each run that changed files.",
    )
    fetch.add_argument("--data-dir", help="data directory to keep current (env DATA_DIR); created if missing")
    fetch.add_argument("--watch", action="store_true", help="fetch again every --interval seconds until stopped")
    config.add_fetch_arguments(fetch, interval_flag="--interval")
    fetch.add_argument("--log-level", help="debug, info, warning or error (env LOG_LEVEL; default info)")
    fetch.set_defaults(func=cmd_fetch)


def main(argv=None):
    args = build_parser().parse_args(argv)
    args.func(args)


if __name__ == "__main__":
    main()
