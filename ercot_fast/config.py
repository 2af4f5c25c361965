"""Configuration in one place: command-line flags, then the environment, then
defaults. Imports nothing of ours, so every command (``ingest`` too) can read
its settings without loading the serving stack."""
import argparse
import dataclasses
import datetime
import os
import ssl
from pathlib import Path

DEFAULT_MAX_RANGE_DAYS = 3700
DEFAULT_CACHE_MB = 64  # per-worker response cache
DEFAULT_MAX_AGE = 60  # Cache-Control max-age of price answers, seconds
WORKER_CLASSES = ("meinheld", "gthread", "sync")  # serve.gunicorn maps them to gunicorn worker classes
TLS_WORKER_CLASS = "gthread"  # the default with TLS: meinheld has none
LOG_FORMATS = ("text", "json")  # logs.FORMATS, kept equal by a test
DEFAULT_MAX_SERIES = 1000  # series one request may ask for (duplicates count)
DEFAULT_MIN_RELOAD_FRACTION = 0.9  # a reload with fewer rows than this share of a data set's is refused
DEFAULT_SQL_TIMEOUT = 30.0  # seconds one Flight SQL query may run
DEFAULT_SQL_MAX_RESULT_MB = 512  # Arrow bytes of one Flight SQL answer
DEFAULT_SQL_MEMORY_MB = 1024  # the SQL engine's working memory
DEFAULT_MAX_RESPONSE_MB = 256  # largest HTTP answer body
DEFAULT_STREAM_ADDR = "0.0.0.0:8081"  # the HTTP default's port + 1
DEFAULT_REQUEST_TIMEOUT = 20.0  # seconds an HTTP request may compute (under gunicorn's 30 s worker timeout)
# ERCOT's report listings and downloads (ercot-fast fetch)
FETCH_REPORTS = ("np4-190-cd", "np6-905-cd", "np4-188-cd")  # fetch.reports.REPORTS, kept equal by a test
DEFAULT_FETCH_INTERVAL = 300.0  # ERCOT asks clients to poll a report no faster than every 5 minutes
DEFAULT_MIS_URL = "https://www.ercot.com"
DEFAULT_API_URL = "https://api.ercot.com/api/public-reports"
DEFAULT_TOKEN_URL = (
    "https://ercotb2c.b2clogin.com/ercotb2c.onmicrosoft.com/B2C_1_PUBAPI-ROPC-FLOW/oauth2/v2.0/token"
)


@dataclasses.dataclass(frozen=True)
class FetchConfig:
    """What ``ercot-fast fetch`` (and ``serve --fetch``) fetches, and from where.
    Holds no credential: those are read from the environment where they are used."""

    reports: tuple = FETCH_REPORTS
    since: str | None = None  # YYYY-MM-DD: backfill documents published since (the Public API)
    interval: float = DEFAULT_FETCH_INTERVAL  # seconds between runs (--watch, serve --fetch)
    mis_url: str = DEFAULT_MIS_URL
    api_url: str = DEFAULT_API_URL
    token_url: str = DEFAULT_TOKEN_URL
    settlement_points: tuple | None = None  # None: all

    def describe(self):
        return " ".join(f"{k}={v}" for k, v in dataclasses.asdict(self).items())


@dataclasses.dataclass(frozen=True)
class ServeConfig:
    data_dir: str | None  # None: serve the built-in demo data
    json_addr: str
    flight_addr: str
    workers: int
    worker_class: str
    max_range_days: int
    response_cache_mb: int
    cache_max_age: int
    max_series: int
    allow_shrink: bool
    min_reload_fraction: float
    stale_after: dict  # data set -> seconds; empty: off
    runtime_dir: str | None  # None: a new folder in the system's temporary folder
    log_level: str
    access_log: bool = True
    metrics: bool = True
    log_format: str = "text"
    sql_timeout: float = DEFAULT_SQL_TIMEOUT
    sql_max_result_mb: int = DEFAULT_SQL_MAX_RESULT_MB
    sql_memory_mb: int = DEFAULT_SQL_MEMORY_MB
    api_keys_file: str | None = None
    metrics_key: str | None = None
    rate_limit: float | None = None  # requests per second per key or client; None: off
    burst: int | None = None  # None: twice the rate's second
    max_response_mb: int = DEFAULT_MAX_RESPONSE_MB
    request_timeout: float = DEFAULT_REQUEST_TIMEOUT
    drain_seconds: float = 0.0  # after SIGTERM: /api/ready 503, still serving, then stop
    health_addr: str | None = None  # the gRPC health service's address; None: off
    tls_cert: str | None = None  # PEM certificate chain; with tls_key: HTTPS and grpc+tls://
    tls_key: str | None = None
    plain_http: bool = False  # TLS for Flight only: a proxy in front terminates HTTP's
    reload_interval: float = 0.0  # seconds between polls of the data directory for changes; 0: off
    s3_endpoint: str | None = None  # an S3-compatible store's URL (MinIO); None: AWS's, from the environment
    flight_advertise: tuple = ()  # Flight locations get_flight_info lists; empty: this server's own
    fetch: FetchConfig | None = None  # serve --fetch: the fetcher's settings; None: no fetcher
    stream_addr: str = DEFAULT_STREAM_ADDR  # the live-price stream's (Server-Sent Events) address

    @property
    def tls(self):
        return self.tls_cert is not None

    @property
    def http_tls(self):
        return self.tls and not self.plain_http

    def describe(self):
        shown = {k: ("***" if k == "metrics_key" and v else v) for k, v in dataclasses.asdict(self).items()}
        shown["fetch"] = f"({self.fetch.describe()})" if self.fetch else None
        return " ".join(f"{k}={v}" for k, v in shown.items())


# option -> (environment variable, default, type)
_SERVE_SETTINGS = {
    "data_dir": ("DATA_DIR", None, str),
    "json_addr": ("JSON_ADDR", "0.0.0.0:8080", str),
    "flight_addr": ("FLIGHT_ADDR", "0.0.0.0:50051", str),
    "workers": ("WORKERS", os.cpu_count() or 1, int),
    "worker_class": ("WORKER_CLASS", None, str),  # None: meinheld, or TLS_WORKER_CLASS with TLS
    "max_range_days": ("MAX_RANGE_DAYS", DEFAULT_MAX_RANGE_DAYS, int),
    "response_cache_mb": ("RESPONSE_CACHE_MB", DEFAULT_CACHE_MB, int),
    "cache_max_age": ("CACHE_MAX_AGE", DEFAULT_MAX_AGE, int),
    "max_series": ("MAX_SERIES", DEFAULT_MAX_SERIES, int),
    "allow_shrink": ("ALLOW_SHRINK", False, lambda text: parse_bool(text, "ALLOW_SHRINK")),
    "min_reload_fraction": ("MIN_RELOAD_FRACTION", DEFAULT_MIN_RELOAD_FRACTION, float),
    "stale_after": ("STALE_AFTER", {}, lambda text: parse_stale_after(text)),  # NOTE: defined below
    "runtime_dir": ("RUNTIME_DIR", None, str),
    "log_level": ("LOG_LEVEL", "info", str),
    "access_log": ("ACCESS_LOG", True, lambda text: parse_bool(text, "ACCESS_LOG")),
    "metrics": ("METRICS", True, lambda text: parse_bool(text, "METRICS")),
    "log_format": ("LOG_FORMAT", "text", str),
    "sql_timeout": ("SQL_TIMEOUT", DEFAULT_SQL_TIMEOUT, float),
    "sql_max_result_mb": ("SQL_MAX_RESULT_MB", DEFAULT_SQL_MAX_RESULT_MB, int),
    "sql_memory_mb": ("SQL_MEMORY_MB", DEFAULT_SQL_MEMORY_MB, int),
    "api_keys_file": ("API_KEYS_FILE", None, str),
    "metrics_key": ("METRICS_KEY", None, str),
    "rate_limit": ("RATE_LIMIT", None, lambda text: parse_rate(text)),  # NOTE: defined below
    "burst": ("BURST", None, int),
    "max_response_mb": ("MAX_RESPONSE_MB", DEFAULT_MAX_RESPONSE_MB, int),
    "request_timeout": ("REQUEST_TIMEOUT", DEFAULT_REQUEST_TIMEOUT, float),
    "drain_seconds": ("DRAIN_SECONDS", 0.0, float),
    "health_addr": ("HEALTH_ADDR", None, str),
    "tls_cert": ("TLS_CERT", None, str),
    "tls_key": ("TLS_KEY", None, str),
    "plain_http": ("PLAIN_HTTP", False, lambda text: parse_bool(text, "PLAIN_HTTP")),
    "reload_interval": ("RELOAD_INTERVAL", 0.0, float),
    "s3_endpoint": ("S3_ENDPOINT", None, str),
    "flight_advertise": ("FLIGHT_ADVERTISE", (), lambda text: parse_locations(text)),  # NOTE: defined below
    "stream_addr": ("STREAM_ADDR", None, str),  # None: the HTTP address's port + 1
}


def add_serve_arguments(parser):
    parser.add_argument("--data-dir", help="data directory in the reference layout (env DATA_DIR; default: demo data)")
    parser.add_argument("--json-addr", help="HTTP JSON API address HOST:PORT (env JSON_ADDR; default 0.0.0.0:8080)")
    parser.add_argument(
        "--flight-addr", help="Arrow Flight address HOST:PORT (env FLIGHT_ADDR; default 0.0.0.0:50051)"
    )
    parser.add_argument("--workers", type=int, help="HTTP worker processes (env WORKERS; default: CPU count)")
    parser.add_argument(
        "--worker-class",
        choices=tuple(WORKER_CLASSES),
        help="gunicorn worker: meinheld (fast, the default), gthread (the default with TLS: meinheld has none) "
        "or sync (fallback) (env WORKER_CLASS)",
    )
    parser.add_argument(
        "--max-range-days",
        type=int,
        help=f"longest date range one request may ask for (env MAX_RANGE_DAYS; default {DEFAULT_MAX_RANGE_DAYS})",
    )
    parser.add_argument(
        "--response-cache-mb",
        type=int,
        help=f"per-worker cache of rendered price answers, 0 turns it off (env RESPONSE_CACHE_MB; default {DEFAULT_CACHE_MB})",
    )
    parser.add_argument(
        "--cache-max-age",
        type=int,
        help=f"Cache-Control max-age of price answers in seconds (env CACHE_MAX_AGE; default {DEFAULT_MAX_AGE})",
    )
    parser.add_argument(
        "--max-series",
        type=int,
        help=f"most series one request may ask for, duplicates counted (env MAX_SERIES; default {DEFAULT_MAX_SERIES})",
    )
    parser.add_argument(
        "--allow-shrink",
        action="store_true",
        default=None,
        help="accept reloads that would serve less data than now (env ALLOW_SHRINK=1; default: refuse them; "
        "for one reload only, create DATA_DIR/.allow-shrink before sending SIGHUP)",
    )
    parser.add_argument(
        "--min-reload-fraction",
        type=float,
        help="a reload whose data set has fewer rows than this share of the one served is refused "
        f"(env MIN_RELOAD_FRACTION; default {DEFAULT_MIN_RELOAD_FRACTION})",
    )
    parser.add_argument(
        "--stale-after",
        type=_argument(parse_stale_after),
        metavar="AGE",
        help="health says degraded when a data set's newest interval is older than AGE: one age for all "
        "(36h, 90m, 2d) or per data set (day_ahead=36h,real_time=2h) (env STALE_AFTER; default off)",
    )
    parser.add_argument(
        "--runtime-dir",
        help="folder for the memory-mapped store the processes share (env RUNTIME_DIR; default: the system's temporary folder)",
    )
    parser.add_argument("--log-level", help="debug, info, warning or error (env LOG_LEVEL; default info)")
    parser.add_argument(
        "--log-format",
        choices=LOG_FORMATS,
        help="text, or json: one object per line, for every log and the access log (env LOG_FORMAT; default text)",
    )
    parser.add_argument(
        "--access-log",
        type=_argument(lambda text: parse_bool(text, "--access-log")),
        metavar="on|off",
        help="one line per HTTP request and Flight call (env ACCESS_LOG; default on)",
    )
    parser.add_argument(
        "--metrics",
        type=_argument(lambda text: parse_bool(text, "--metrics")),
        metavar="on|off",
        help="count requests and calls for GET /metrics (env METRICS; default on; off: /metrics shows the store only)",
    )
    parser.add_argument(
        "--sql-timeout",
        type=float,
        metavar="SECONDS",
        help=f"longest a Flight SQL query may run (env SQL_TIMEOUT; default {DEFAULT_SQL_TIMEOUT:g})",
    )
    parser.add_argument(
        "--sql-max-result-mb",
        type=int,
        help=f"largest Flight SQL answer, in MB of Arrow data (env SQL_MAX_RESULT_MB; default {DEFAULT_SQL_MAX_RESULT_MB})",
    )
    parser.add_argument(
        "--sql-memory-mb",
        type=int,
        help=f"working memory of the SQL engine (env SQL_MEMORY_MB; default {DEFAULT_SQL_MEMORY_MB})",
    )
    parser.add_argument(
        "--api-keys-file",
        metavar="FILE",
        help="accept only these API keys, one name:key per line, read again on SIGHUP; keys may also come from "
        "the environment variable API_KEYS=name:key,name:key (env API_KEYS_FILE; default: no keys, open to anyone)",
    )
    parser.add_argument(
        "--metrics-key",
        metavar="KEY",
        help="the key /metrics asks for (env METRICS_KEY, better: it stays out of the process list; default: /metrics is open)",
    )
    parser.add_argument(
        "--rate-limit",
        type=_argument(parse_rate),
        metavar="RATE",
        help="requests per API key (or client address, without keys) for the whole service: 200/s, 6000/min "
        "(env RATE_LIMIT; default off)",
    )
    parser.add_argument(
        "--burst",
        type=int,
        help="requests a key may make at once before the rate applies (env BURST; default: two seconds' worth)",
    )
    parser.add_argument(
        "--max-response-mb",
        type=int,
        help=f"largest HTTP answer; larger ones are refused with 413 (env MAX_RESPONSE_MB; default {DEFAULT_MAX_RESPONSE_MB})",
    )
    parser.add_argument(
        "--request-timeout",
        type=float,
        metavar="SECONDS",
        help=f"longest an HTTP request may compute before a 503 (env REQUEST_TIMEOUT; default {DEFAULT_REQUEST_TIMEOUT:g})",
    )
    parser.add_argument(
        "--drain-seconds",
        type=float,
        metavar="SECONDS",
        help="on SIGTERM, keep serving this long with /api/ready answering 503 (and gRPC health NOT_SERVING) "
        "so load balancers stop sending requests, then stop; a second SIGTERM or a SIGINT stops at once "
        "(env DRAIN_SECONDS; default 0: stop at once)",
    )
    parser.add_argument(
        "--health-addr",
        metavar="HOST:PORT",
        help="serve the standard gRPC health service (grpc.health.v1.Health) on this address: SERVING for \"\" and "
        "arrow.flight.protocol.FlightService while prices are loaded, Flight serves and the service is not "
        "draining (env HEALTH_ADDR; default off)",
    )
    parser.add_argument(
        "--tls-cert",
        metavar="FILE",
        help=f"PEM certificate (chain): serve HTTPS (with the {TLS_WORKER_CLASS} worker, as meinheld has no TLS; "
        "or put nginx in front of meinheld: README) and Flight over TLS (grpc+tls://); needs --tls-key "
        "(env TLS_CERT; default: no TLS)",
    )
    parser.add_argument("--tls-key", metavar="FILE", help="PEM private key of --tls-cert, unencrypted (env TLS_KEY)")
    parser.add_argument(
        "--plain-http",
        action="store_true",
        default=None,
        help="serve HTTP without TLS even with --tls-cert, which then applies to Flight only: for nginx "
        "terminating TLS in front of meinheld (env PLAIN_HTTP=1; default off)",
    )
    parser.add_argument(
        "--reload-interval",
        type=float,
        metavar="SECONDS",
        help="look at the data directory (local or s3://) this often and reload when a price file was added, "
        "changed or removed (env RELOAD_INTERVAL; default 0: only on SIGHUP, the Flight action reload or "
        "POST /api/admin/reload)",
    )
    parser.add_argument(
        "--flight-advertise",
        type=_argument(lambda text: parse_locations(text)),
        metavar="URIS",
        help="the Flight locations get_flight_info lists for every pull, comma-separated: "
        "grpc://host-a:50051,grpc://host-b:50051 for replicas (env FLIGHT_ADVERTISE; default: none, "
        "clients read from the server they asked)",
    )
    parser.add_argument(
        "--fetch",
        action="store_true",
        default=None,
        help="keep the data directory current from ERCOT's published reports: run `ercot-fast fetch --watch` "
        "as a supervised child, which signals a reload after each run that changed files (env FETCH=1; "
        "default off; the --fetch-* flags below, and `ercot-fast fetch --help`)",
    )
    add_fetch_arguments(parser, interval_flag="--fetch-interval")
    parser.add_argument(
        "--stream-addr",
        metavar="HOST:PORT",
        help="the live-price stream, GET /api/stream (Server-Sent Events), on this address; /api/stream on the "
        "HTTP port redirects there (env STREAM_ADDR; default: the --json-addr host and its port + 1, 0.0.0.0:8081)",
    )
    add_storage_arguments(parser)


def add_fetch_arguments(parser, interval_flag):
    """The settings of the fetcher, for ``ercot-fast fetch`` and ``serve --fetch``."""
    parser.add_argument(
        "--reports",
        metavar="LIST",
        help=f"comma-separated reports to fetch, of {', '.join(FETCH_REPORTS)} (env FETCH_REPORTS; default: all)",
    )
    parser.add_argument(
        "--since",
        metavar="DATE",
        help="also backfill documents published since DATE (YYYY-MM-DD) through ERCOT's Public API (needs "
        "ERCOT_API_KEY, ERCOT_USERNAME, ERCOT_PASSWORD; it holds data from 2023-12-11); without credentials, "
        "only the recent documents ERCOT's MIS lists, published since DATE (env FETCH_SINCE; default: "
        "what the MIS lists)",
    )
    parser.add_argument(
        interval_flag,
        dest="fetch_interval",
        type=float,
        metavar="SECONDS",
        help=f"seconds between fetches (env FETCH_INTERVAL; default {DEFAULT_FETCH_INTERVAL:g}: ERCOT asks for "
        "no more than one poll of a report per 5 minutes)",
    )
    parser.add_argument(
        "--settlement-points",
        metavar="LIST",
        help="comma-separated settlement points to keep, e.g. HB_NORTH,LZ_WEST (env FETCH_SETTLEMENT_POINTS; "
        "default: all)",
    )
    parser.add_argument("--mis-url", metavar="URL", help=f"ERCOT's MIS (env MIS_URL; default {DEFAULT_MIS_URL})")
    parser.add_argument(
        "--api-url", metavar="URL", help=f"ERCOT's Public API reports (env API_URL; default {DEFAULT_API_URL})"
    )
    parser.add_argument(
        "--token-url", metavar="URL", help="the Public API's token endpoint (env TOKEN_URL; default ERCOT's B2C one)"
    )


# option -> (environment variable, default)
_FETCH_SETTINGS = {
    "reports": ("FETCH_REPORTS", None),
    "since": ("FETCH_SINCE", None),
    "fetch_interval": ("FETCH_INTERVAL", DEFAULT_FETCH_INTERVAL),
    "settlement_points": ("FETCH_SETTLEMENT_POINTS", None),
    "mis_url": ("MIS_URL", DEFAULT_MIS_URL),
    "api_url": ("API_URL", DEFAULT_API_URL),
    "token_url": ("TOKEN_URL", DEFAULT_TOKEN_URL),
}


def fetch_config(args, environ=os.environ):
    """Resolve the fetcher's settings: flag, else environment variable, else default."""
    values = {}
    for name, (env, default) in _FETCH_SETTINGS.items():
        value = getattr(args, name)
        values[name] = value if value is not None else environ.get(env) or default
    reports = FETCH_REPORTS
    if values["reports"]:
        reports = tuple(dict.fromkeys(r.strip().lower() for r in str(values["reports"]).split(",") if r.strip()))
        unknown = [r for r in reports if r not in FETCH_REPORTS]
        if unknown or not reports:
            raise SystemExit(f"error: --reports {values['reports']!r}: use some of {', '.join(FETCH_REPORTS)}")
    since = values["since"]
    if since is not None:
        try:
            since = datetime.date.fromisoformat(str(since).strip()).isoformat()
        except ValueError:
            raise SystemExit(f"error: --since {since!r} is not a date like 2024-01-31") from None
    try:
        interval = float(values["fetch_interval"])
    except ValueError:
        raise SystemExit(f"error: FETCH_INTERVAL={values['fetch_interval']!r} is not a number of seconds") from None
    if not interval > 0:
        raise SystemExit("error: the fetch interval is a positive number of seconds, like 300")
    points = None
    if values["settlement_points"]:
        points = tuple(p.strip().upper() for p in str(values["settlement_points"]).split(",") if p.strip()) or None
    for flag, url in (("--mis-url", values["mis_url"]), ("--api-url", values["api_url"]), ("--token-url", values["token_url"])):
        if not str(url).startswith(("http://", "https://")):
            raise SystemExit(f"error: {flag} {url!r} is not an http:// or https:// URL")
    return FetchConfig(reports, since, interval, values["mis_url"].rstrip("/"), values["api_url"].rstrip("/"),
                       values["token_url"], points)


def check_fetch_data_dir(data_dir, what):
    """The fetcher writes a local folder: say so for none, or for object storage."""
    if not data_dir:
        raise SystemExit(f"error: {what} --data-dir (or DATA_DIR): the folder it keeps current")
    if "://" in str(data_dir):  # its manifest, lock and downloads are files of a folder
        raise SystemExit(f"error: {what} a local --data-dir, not {data_dir}: fetch into a folder, then sync it")


def add_storage_arguments(parser):
    """Where object storage is, for every command that reads or writes a data directory."""
    parser.add_argument(
        "--s3-endpoint",
        metavar="URL",
        help="for --data-dir s3://bucket/prefix on an S3-compatible store (MinIO): its URL, http://host:9000 "
        "(env S3_ENDPOINT; default: AWS; credentials and region from AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, "
        "AWS_REGION as for the AWS CLI)",
    )


def _argument(parse):
    """``parse`` for argparse: its ValueError's text as the error (not "invalid value")."""

    def parsed(text):
        try:
            return parse(text)
        except ValueError as exc:
            raise argparse.ArgumentTypeError(str(exc)) from None

    parsed.__name__ = parse.__name__
    return parsed


_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}
_DATASET_NAMES = ("day_ahead", "real_time", "real_time_15min", "ancillary_services")


def parse_duration(text):
    """'90m', '36h', '2d', '45s' -> seconds."""
    text = text.strip().lower()
    if len(text) < 2 or text[-1] not in _UNITS or not text[:-1].isdigit() or int(text[:-1]) <= 0:
        raise ValueError(f"{text!r} is not an age like 90m, 36h or 2d")
    return int(text[:-1]) * _UNITS[text[-1]]


def parse_stale_after(text):
    """'36h' (every data set) or 'day_ahead=36h,real_time=2h' -> {data set: seconds}."""
    if "=" not in text:
        seconds = parse_duration(text)
        return {name: seconds for name in _DATASET_NAMES}
    ages = {}
    for part in filter(None, (p.strip() for p in text.split(","))):
        name, _, age = part.partition("=")
        if name.strip() not in _DATASET_NAMES:
            raise ValueError(f"{name.strip()!r} is not a data set: use {', '.join(_DATASET_NAMES)}")
        ages[name.strip()] = parse_duration(age)
    return ages


def parse_rate(text):
    """'200/s', '6000/min', '100/h' -> requests per second."""
    count, sep, unit = text.strip().lower().partition("/")
    per = {"s": 1, "sec": 1, "second": 1, "m": 60, "min": 60, "minute": 60, "h": 3600, "hour": 3600}.get(unit.strip())
    try:
        number = float(count) if sep else 0.0
    except ValueError:
        number = 0.0
    if per is None or not 0 < number < 1e9:
        raise ValueError(f"{text!r} is not a rate like 200/s, 6000/min or 100/h")
    return number / per


def parse_locations(text):
    """'grpc://a:50051,grpc+tls://b:50051' -> a tuple of Flight location URIs."""
    locations = tuple(part.strip() for part in text.split(",") if part.strip())
    for uri in locations:
        scheme, sep, rest = uri.partition("://")
        host, colon, port = rest.rpartition(":")
        if scheme not in ("grpc", "grpc+tcp", "grpc+tls") or not sep or not host or not colon or not port.isdigit():
            raise ValueError(f"{uri!r} is not a Flight location like grpc://host:50051 or grpc+tls://host:50051")
    if not locations:
        raise ValueError("give at least one Flight location, like grpc://host:50051")
    return locations


def parse_bool(text, name):
    if text.strip().lower() in ("1", "true", "yes", "on"):
        return True
    if text.strip().lower() in ("0", "false", "no", "off", ""):
        return False
    raise ValueError(f"{name} is 1 or 0, not {text!r}")


def serve_config(args, environ=os.environ):
    """Resolve every serve setting: flag, else environment variable, else default."""
    values = {}
    for name, (env, default, kind) in _SERVE_SETTINGS.items():
        value = getattr(args, name)
        if value is None and environ.get(env):
            try:
                value = kind(environ[env])
            except ValueError as exc:
                what = kind.__name__ if isinstance(kind, type) else "value"
                raise SystemExit(f"error: environment variable {env}={environ[env]!r} is not a valid {what} ({exc})")
        values[name] = default if value is None else value
    http_tls = values["tls_cert"] is not None and not values["plain_http"]
    if values["stream_addr"] is None:
        host, port = split_addr(values["json_addr"])
        values["stream_addr"] = f"{host}:{port + 1}"
    _check_tls(values["tls_cert"], values["tls_key"], values["worker_class"] if http_tls else None)
    if values["worker_class"] is None:
        values["worker_class"] = TLS_WORKER_CLASS if http_tls else "meinheld"
    wants_fetch = args.fetch
    if wants_fetch is None:
        try:
            wants_fetch = parse_bool(environ.get("FETCH", ""), "FETCH")
        except ValueError as exc:
            raise SystemExit(f"error: environment variable {exc}") from None
    values["fetch"] = fetch_config(args, environ) if wants_fetch else None
    if values["fetch"] is not None:
        check_fetch_data_dir(values["data_dir"], "--fetch needs")
    config = ServeConfig(**values)
    if config.worker_class not in WORKER_CLASSES:
        raise SystemExit(f"error: worker class {config.worker_class!r}: use one of {', '.join(WORKER_CLASSES)}")
    if config.workers < 1:
        raise SystemExit("error: --workers must be at least 1")
    if config.max_range_days < 1:
        raise SystemExit("error: --max-range-days must be at least 1")
    if config.response_cache_mb < 0 or config.cache_max_age < 0:
        raise SystemExit("error: --response-cache-mb and --cache-max-age cannot be negative")
    if config.max_series < 1:
        raise SystemExit("error: --max-series must be at least 1")
    if not 0 <= config.min_reload_fraction <= 1:
        raise SystemExit("error: --min-reload-fraction is a share from 0 to 1 (0.9: refuse losing over 10% of a data set)")
    if config.log_format not in LOG_FORMATS:
        raise SystemExit(f"error: log format {config.log_format!r}: use text or json")
    if config.sql_timeout <= 0 or config.sql_max_result_mb < 1 or config.sql_memory_mb < 64:
        raise SystemExit("error: --sql-timeout must be positive, --sql-max-result-mb at least 1, --sql-memory-mb at least 64")
    if config.burst is not None and config.burst < 1:
        raise SystemExit("error: --burst must be at least 1")
    if config.max_response_mb < 1 or config.request_timeout <= 0:
        raise SystemExit("error: --max-response-mb must be at least 1 and --request-timeout positive")
    if config.metrics_key is not None and len(config.metrics_key) < 16:
        raise SystemExit("error: --metrics-key must have at least 16 characters")
    if config.reload_interval < 0:
        raise SystemExit("error: --reload-interval is 0 (off) or a number of seconds, like 30")
    if not 0 <= config.drain_seconds <= 3600:
        raise SystemExit("error: --drain-seconds is from 0 (stop at once) to 3600")
    addrs = {"--json-addr": config.json_addr, "--flight-addr": config.flight_addr, "--stream-addr": config.stream_addr}
    if config.health_addr:
        addrs["--health-addr"] = config.health_addr
    for addr in addrs.values():
        split_addr(addr)
    flags = list(addrs)
    for i, flag in enumerate(flags):
        for other in flags[i + 1:]:
            if addrs[flag] == addrs[other]:
                raise SystemExit(f"error: {flag} and {other} are both {addrs[flag]}: give them different ports")
    return config


def _check_tls(cert, key, worker_class):
    """Both files or neither, readable, a certificate and its unencrypted key;
    ``worker_class``, the HTTPS worker's, never meinheld (it has no TLS)."""
    if (cert is None) != (key is None):
        raise SystemExit("error: give both --tls-cert and --tls-key (or TLS_CERT and TLS_KEY), or neither")
    if cert is None:
        return
    if worker_class == "meinheld":
        raise SystemExit(
            "error: the meinheld worker cannot serve TLS: leave --worker-class (WORKER_CLASS) unset to serve "
            f"HTTPS with {TLS_WORKER_CLASS}, or keep meinheld on plain HTTP behind nginx's TLS with --plain-http "
            "(README, TLS)"
        )
    for flag, path, marker, what in (("--tls-cert", cert, b"-----BEGIN CERTIFICATE-----", "certificate"),
                                     ("--tls-key", key, b"PRIVATE KEY-----", "private key")):
        try:
            with open(path, "rb") as file:
                text = file.read()
        except OSError as exc:
            raise SystemExit(f"error: {flag} {path}: cannot read it ({exc.strerror or exc})")
        if marker not in text:
            raise SystemExit(f"error: {flag} {path} is not a PEM {what}")
        if b"ENCRYPTED" in text:  # NOTE: OpenSSL would ask for its passphrase on the terminal
            raise SystemExit(f"error: {flag} {path} holds an encrypted key: give the key without a passphrase")
    try:
        ssl.create_default_context(ssl.Purpose.CLIENT_AUTH).load_cert_chain(cert, key)
    except ssl.SSLError as exc:
        raise SystemExit(f"error: --tls-cert {cert} and --tls-key {key} do not make a certificate and its key ({exc.reason or exc})")


def split_addr(addr):
    """'HOST:PORT' -> (host, port), with a clear error for anything else."""
    host, sep, port = addr.rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise SystemExit(f"error: address {addr!r} is not HOST:PORT (for example 0.0.0.0:8080)")
    return host, int(port)


def setting(value, env, default=None, environ=os.environ):
    """One setting outside ``serve``: the flag's value, else the environment's, else the default."""
    return value or environ.get(env) or default


def demo_data_dir(environ=os.environ):
    """Where the built-in demo data is generated once and kept."""
    cache = environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(cache) / "ercot_fast" / "demo-data-v1"
