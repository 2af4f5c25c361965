"""The ``ercot-fast`` command: serve prices, write demo data."""
import argparse
import logging
import shutil
import sys
import tempfile
from pathlib import Path

from ercot_fast import __version__, config
from ercot_fast.errors import DataLoadError

log = logging.getLogger("ercot_fast")


def _setup_logging(level):
    logging.basicConfig(
        level=getattr(logging, level.upper(), logging.INFO),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )


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


def cmd_serve(args):
    settings = config.serve_config(args)
    _setup_logging(settings.log_level)
    log.info("ercot-fast %s starting: %s", __version__, settings.describe())
    from ercot_fast import kernels, server

    server.check_worker_class(settings.worker_class)
    log.info("kernels: %s", ", ".join(f"{k} {'compiled' if v else 'pure-Python twin'}" for k, v in kernels.COMPILED.items()))
    data_dir = settings.data_dir or ensure_demo_data(config.demo_data_dir())
    try:
        service = server.PriceService(settings, data_dir)
    except DataLoadError as exc:
        raise SystemExit(f"error: {exc.message}; {exc.details}")
    service.run()


def cmd_demo_data(args):
    _setup_logging("info")
    from ercot_fast import demo

    summary = demo.write_demo_data(args.directory, seed=args.seed)
    log.info("wrote SYNTHETIC demo data to %s: %s", args.directory, summary)


def build_parser():
    parser = argparse.ArgumentParser(
        prog="ercot-fast",
        description="Serve ERCOT day-ahead, real-time and ancillary-service prices fast.",
    )
    parser.add_argument("--version", action="version", version=f"ercot-fast {__version__}")
    commands = parser.add_subparsers(dest="command", required=True)

    serve = commands.add_parser(
        "serve",
        help="load a data directory into memory and serve the HTTP JSON API",
        description="Load every price file of DATA_DIR into memory, then serve the HTTP JSON API "
        "with gunicorn. Without a data directory, serves generated synthetic demo data.",
    )
    config.add_serve_arguments(serve)
    serve.set_defaults(func=cmd_serve)

    demo_data = commands.add_parser(
        "demo-data",
        help="write a synthetic, seeded demo data set (2019-2024) in the reference layout",
    )
    demo_data.add_argument("directory", help="folder to write (flattened/*.parquet)")
    demo_data.add_argument("--seed", type=int, default=20190101, help="random seed (default 20190101)")
    demo_data.set_defaults(func=cmd_demo_data)
    return parser


def main(argv=None):
    args = build_parser().parse_args(argv)
    args.func(args)


if __name__ == "__main__":
    main()
