"""The memory-resident price store, loaded once at startup from a data directory.

Per data set the store holds a sorted, de-duplicated int64 array of interval
start instants (ms since the epoch, UTC) and one float64 Arrow array per
settlement point or product (null where ERCOT published no price).

Precedence rule (documented in README): several files can hold the same
instant. For each series and instant the value comes from the file of highest
precedence that has a non-null value there. Precedence, highest first:

1. rows that lie inside the period named by their file (``_2021`` or
   ``_2021_02``, by Central market day) before stray rows of other periods;
2. files ingested from ERCOT's own reports (``ercot_fast/<data set>/<data
   set>_YYYY_MM.parquet``, written by ``ercot-fast ingest``: DST-correct, both
   prices of the repeated fall-back hour), then flattened files, then annual
   combined files, then monthly combined files;
3. for real-time hourly values only: hourly files before hourly means computed
   from the 15-minute data (those fill what no hourly file has);
4. the file path: the later one in sort order wins (a tie-break that never
   depends on listing order); within one file the last row of a duplicated
   instant wins.
"""
import ctypes
import dataclasses
import hashlib
import logging
import re
import time
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from ercot_fast import kernels, timeutil
from ercot_fast.errors import DataLoadError

log = logging.getLogger(__name__)

DAY_AHEAD = "day_ahead"
REAL_TIME = "real_time"  # hourly
REAL_TIME_15MIN = "real_time_15min"
ANCILLARY_SERVICES = "ancillary_services"
DATASETS = (DAY_AHEAD, REAL_TIME, REAL_TIME_15MIN, ANCILLARY_SERVICES)
INTERVAL_MS = {
    DAY_AHEAD: timeutil.MS_PER_HOUR,
    REAL_TIME: timeutil.MS_PER_HOUR,
    REAL_TIME_15MIN: 15 * timeutil.MS_PER_MINUTE,
    ANCILLARY_SERVICES: timeutil.MS_PER_HOUR,
}
AS_PRODUCTS = ("ECRS", "NSPIN", "REGDN", "REGUP", "RRS")
SYNTHETIC_KEY = b"ercot_fast.synthetic"

# file pattern -> (kind rank, data set of the file's price columns or None for combined)
_INGESTED = 4
_FLATTENED = 3
_COMBINED_ANNUAL = 2
_COMBINED_MONTHLY = 1
_FILE_KINDS = (
    (re.compile(r"ercot_fast/day_ahead/day_ahead_(\d{4})_(\d{2})\.parquet"), _INGESTED, DAY_AHEAD),
    (re.compile(r"ercot_fast/real_time_15min/real_time_15min_(\d{4})_(\d{2})\.parquet"), _INGESTED, REAL_TIME_15MIN),
    (
        re.compile(r"ercot_fast/ancillary_services/ancillary_services_(\d{4})_(\d{2})\.parquet"),
        _INGESTED,
        ANCILLARY_SERVICES,
    ),
    (re.compile(r"flattened/DA_prices_(\d{4})\.parquet"), _FLATTENED, DAY_AHEAD),
    (re.compile(r"flattened/RT_prices_15min_(\d{4})\.parquet"), _FLATTENED, REAL_TIME_15MIN),
    (re.compile(r"flattened/RT_prices_hourly_(\d{4})\.parquet"), _FLATTENED, REAL_TIME),
    (re.compile(r"flattened/AS_prices_(\d{4})\.parquet"), _FLATTENED, ANCILLARY_SERVICES),
    (re.compile(r"combined/DA_AS_RT_combined_(\d{4})\.parquet"), _COMBINED_ANNUAL, None),
    (
        re.compile(r"combined/monthly/DA_AS_RT_combined/DA_AS_RT_combined_(\d{4})_(\d{2})\.parquet"),
        _COMBINED_MONTHLY,
        None,
    ),
)
_TIME_COLUMNS = ("datetime_ts", "datetime")
_COMBINED_PREFIXES = {"DA_": DAY_AHEAD, "RT_": REAL_TIME, "AS_": ANCILLARY_SERVICES}


@dataclasses.dataclass(frozen=True)
class Dataset:
    """One price type: sorted UTC interval starts and aligned price columns."""

    name: str
    interval_ms: int
    timestamps: np.ndarray  # int64 ms since the epoch, UTC, sorted, unique
    columns: dict  # series name -> pyarrow float64 Array, len(timestamps)
    # the JSON writer's view of the columns, built once: kernels.PriceTable and
    # series name -> its column number there
    table: object = dataclasses.field(init=False, repr=False)
    numbers: dict = dataclasses.field(init=False, repr=False)

    def __post_init__(self):
        names = tuple(self.columns)
        object.__setattr__(self, "table", kernels.PriceTable(self.timestamps, names, [self.columns[n] for n in names]))
        object.__setattr__(self, "numbers", {name: number for number, name in enumerate(names)})

    def __len__(self):
        return len(self.timestamps)


@dataclasses.dataclass(frozen=True)
class Store:
    datasets: dict  # data set name -> Dataset
    data_dir: str
    synthetic: bool
    files_loaded: int
    load_seconds: float
    version: str  # fingerprint of the loaded prices: equal data, equal version
    # every settlement point of the day-ahead or real-time data: HB_*, LZ_*,
    # DC_*, then any others, alphabetical within a family
    settlement_points: tuple = dataclasses.field(init=False)
    known_settlement_points: frozenset = dataclasses.field(init=False)

    def __post_init__(self):
        names = set()
        for name in (DAY_AHEAD, REAL_TIME, REAL_TIME_15MIN):
            names.update(self.datasets[name].columns)
        object.__setattr__(self, "settlement_points", tuple(sorted(names, key=settlement_point_order)))
        object.__setattr__(self, "known_settlement_points", frozenset(names))

    @property
    def total_rows(self):
        return sum(len(d) for d in self.datasets.values())


def settlement_point_order(name):
    families = ("HB_", "LZ_", "DC_")
    family = next((i for i, f in enumerate(families) if name.startswith(f)), len(families))
    return family, name


@dataclasses.dataclass
class _Piece:
    """Rows of one file for one data set, sorted and de-duplicated."""

    dataset: str
    precedence: tuple
    timestamps: np.ndarray
    columns: dict  # name -> float64 numpy array, NaN where missing


def load_store(data_dir):
    """Load every known file below ``data_dir`` into a Store.

    Unknown files are logged and ignored; unreadable files are logged and
    skipped. Raises DataLoadError only when the directory itself is unusable.
    """
    started = time.perf_counter()
    root = Path(data_dir)
    if not root.is_dir():
        raise DataLoadError(
            f"data directory {str(root)!r} does not exist",
            "pass --data-dir (or DATA_DIR) pointing at a folder with flattened/ or combined/ files",
        )
    pieces = []
    files_loaded = 0
    synthetic = False
    for path in sorted(p for p in root.rglob("*") if p.is_file()):
        relative = path.relative_to(root).as_posix()
        kind = _match_kind(relative)
        if kind is None:
            log.info("ignored unknown file %s", relative)
            continue
        try:
            table = pq.read_table(path)
            file_pieces = _pieces_of(table, relative, *kind)
        except Exception as exc:  # a corrupt file must never stop the service
            log.error("skipped unreadable file %s: %s", relative, exc)
            continue
        files_loaded += 1
        synthetic |= (table.schema.metadata or {}).get(SYNTHETIC_KEY) == b"true"
        pieces.extend(file_pieces)
    # every settlement point is a series of each of its data sets (null where a
    # data set has no price for it), so a query never meets a missing column
    points = sorted({n for p in pieces if p.dataset != ANCILLARY_SERVICES for n in p.columns})
    datasets = {REAL_TIME_15MIN: _merge(REAL_TIME_15MIN, [p for p in pieces if p.dataset == REAL_TIME_15MIN], points)}
    pieces.append(_hourly_means_piece(datasets[REAL_TIME_15MIN]))
    for name in (DAY_AHEAD, REAL_TIME):
        datasets[name] = _merge(name, [p for p in pieces if p.dataset == name], points)
    ancillary = [p for p in pieces if p.dataset == ANCILLARY_SERVICES]
    datasets[ANCILLARY_SERVICES] = _merge(ANCILLARY_SERVICES, ancillary, sorted({n for p in ancillary for n in p.columns}))
    for dataset in datasets.values():
        _report_day_lengths(dataset)
    version = _fingerprint(datasets)
    _return_freed_memory()
    store = Store(datasets, str(root), synthetic, files_loaded, time.perf_counter() - started, version)
    log.info(
        "loaded %d files from %s in %.2f s: %s%s",
        files_loaded,
        root,
        store.load_seconds,
        ", ".join(f"{d.name} {len(d)} rows x {len(d.columns)} series" for d in datasets.values()),
        " (SYNTHETIC demo data, not real ERCOT prices)" if synthetic else "",
    )
    return store


def _return_freed_memory():
    """Hand the file-reading scratch memory back to the OS before the workers
    fork, so they do not inherit it (about 60 MB on the demo data)."""
    pa.default_memory_pool().release_unused()
    try:
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):  # not glibc: nothing to trim
        pass


def _fingerprint(datasets):
    """A digest of every instant, series name and price: replicas that load
    the same data agree on it (it is the base of HTTP ETags)."""
    digest = hashlib.blake2b(digest_size=8)
    for name, dataset in sorted(datasets.items()):
        digest.update(name.encode())
        digest.update(dataset.timestamps)
        for series, array in sorted(dataset.columns.items()):
            digest.update(series.encode())
            digest.update(array.to_numpy(zero_copy_only=False))  # nulls as NaN
    return digest.hexdigest()


def _match_kind(relative):
    for pattern, rank, dataset in _FILE_KINDS:
        match = pattern.fullmatch(relative)
        if match:
            period = tuple(int(g) for g in match.groups())
            return rank, dataset, period
    return None


def _pieces_of(table, relative, rank, dataset, period):
    """Split one file into pieces: per data set, its rows inside and outside
    the file's period."""
    time_name = next((n for n in _TIME_COLUMNS if n in table.column_names), None)
    if time_name is None:
        raise ValueError(f"no time column (expected one of {', '.join(_TIME_COLUMNS)})")
    times = table.column(time_name)
    if not pa.types.is_timestamp(times.type):
        raise ValueError(f"time column {time_name} is {times.type}, not a timestamp")
    wallclock_given = times.type.tz is None
    times = pc.cast(times, pa.timestamp("ms", tz=times.type.tz), safe=False).combine_chunks()
    if times.null_count:
        log.warning("%s: %d rows without a time dropped", relative, times.null_count)
    raw = times.cast(pa.int64()).fill_null(np.iinfo(np.int64).min).to_numpy()
    keep = raw != np.iinfo(np.int64).min
    if wallclock_given:
        wallclock = raw
        utc, nonexistent = timeutil.central_to_utc(raw)
        if nonexistent.any():
            log.warning(
                "%s: %d rows at Central times that do not exist (spring-forward hour) dropped",
                relative,
                int(nonexistent[keep].sum()),
            )
            keep &= ~nonexistent
    else:
        utc = raw
        wallclock = timeutil.central_wallclock(raw)

    columns_by_dataset = {}
    for field in table.schema:
        if field.name == time_name:
            continue
        if not pa.types.is_floating(field.type):
            continue  # DeliveryDate, DeliveryDateStr, DeliveryInterval, indexes...
        target, name = _series_of(field.name, dataset)
        if target is None:
            log.info("%s: ignored column %s", relative, field.name)
            continue
        values = pc.cast(table.column(field.name), pa.float64()).to_numpy(zero_copy_only=False)
        columns_by_dataset.setdefault(target, {})[name] = values

    in_period = _in_period(wallclock, period)
    pieces = []
    for target, columns in columns_by_dataset.items():
        for inside in (True, False):
            rows = keep & (in_period == inside)
            if not rows.any():
                continue
            if not inside:
                log.warning("%s: %d rows outside %s", relative, int(rows.sum()), _period_name(period))
            precedence = (inside, rank, relative)
            pieces.append(_piece(target, precedence, utc[rows], {n: v[rows] for n, v in columns.items()}, relative))
    return pieces


def _series_of(column, dataset):
    """The (data set, series name) a price column feeds, or (None, None)."""
    if dataset is not None:
        if dataset == ANCILLARY_SERVICES and column.startswith("AS_"):
            column = column[3:]
        return dataset, column
    for prefix, target in _COMBINED_PREFIXES.items():
        if column.startswith(prefix):
            return target, column[len(prefix):]
    return None, None


def _in_period(wallclock_ms, period):
    """True for rows whose Central market day lies in the file's year (or month)."""
    days = (wallclock_ms // timeutil.MS_PER_DAY).astype("datetime64[D]")
    years = days.astype("datetime64[Y]").astype(np.int64) + 1970
    inside = years == period[0]
    if len(period) == 2:
        months = days.astype("datetime64[M]").astype(np.int64) % 12 + 1
        inside &= months == period[1]
    return inside


def _period_name(period):
    return "-".join(f"{p:02d}" for p in period)


def _piece(dataset, precedence, timestamps, columns, relative):
    """Sort rows by instant; of duplicated instants keep the file's last row."""
    order = np.argsort(timestamps, kind="stable")
    if np.any(order[1:] < order[:-1]):
        log.info("%s: rows not in time order (sorted)", relative)
    timestamps = timestamps[order]
    last = np.ones(len(timestamps), dtype=bool)
    last[:-1] = timestamps[1:] != timestamps[:-1]
    duplicates = len(timestamps) - int(last.sum())
    if duplicates:
        log.warning("%s: %d duplicate instants (last row kept)", relative, duplicates)
    keep = order[last]
    return _Piece(dataset, precedence, timestamps[last], {n: v[keep] for n, v in columns.items()})


def _merge(name, pieces, names):
    """Merge pieces by the precedence rule into one Dataset of the series ``names``."""
    if pieces:
        timestamps = np.unique(np.concatenate([p.timestamps for p in pieces]))
    else:
        timestamps = np.empty(0, dtype=np.int64)
    columns = {}
    ranked = sorted(pieces, key=lambda p: p.precedence)  # lowest first: later ones overwrite
    for series in names:
        merged = np.full(len(timestamps), np.nan)
        for piece in ranked:
            values = piece.columns.get(series)
            if values is None:
                continue
            present = ~np.isnan(values)
            merged[np.searchsorted(timestamps, piece.timestamps[present])] = values[present]
        columns[series] = pa.array(merged, from_pandas=True)  # NaN -> null
    return Dataset(name, INTERVAL_MS[name], timestamps, columns)


def hourly_means(timestamps, values):
    """Hourly means of 15-minute prices: the mean of the hour's non-null
    intervals, null when it has none. Returns (hour starts, means).

    Prices in whole cents (all of ERCOT's) are summed exactly as integer
    cents and divided once, so a mean is the double nearest the true mean
    (12.935, not the 12.934999999999999 of a floating-point running sum).
    """
    if len(timestamps) == 0:
        return timestamps[:0], values[:0]
    hours = timestamps - timestamps % timeutil.MS_PER_HOUR  # Central offsets are whole hours
    starts, first = np.unique(hours, return_index=True)
    present = ~np.isnan(values)
    cents = np.round(np.where(present, values, 0.0) * 100.0)
    exact = bool(np.all(cents / 100.0 == np.where(present, values, 0.0))) and np.all(np.abs(cents) < 2**53 / 16)
    counts = np.add.reduceat(present.astype(np.int64), first)
    if exact:
        sums = np.add.reduceat(cents.astype(np.int64), first)
        scale = counts * 100
    else:
        sums = np.add.reduceat(np.where(present, values, 0.0), first)
        scale = counts
    with np.errstate(invalid="ignore", divide="ignore"):
        return starts, np.where(counts > 0, sums / np.maximum(scale, 1), np.nan)


def _hourly_means_piece(quarter_hourly):
    """Real-time hourly values computed from the 15-minute data set, at the
    lowest precedence: they fill only what no hourly file has."""
    columns = {}
    starts = np.empty(0, dtype=np.int64)
    for series, array in quarter_hourly.columns.items():
        values = array.to_numpy(zero_copy_only=False)
        starts, columns[series] = hourly_means(quarter_hourly.timestamps, values)
    return _Piece(REAL_TIME, (False, 0, ""), starts, columns)


def _report_day_lengths(dataset):
    """Log Central market days whose interval count is not what the clock
    says (the reference files' collapsed fall-back hour, 92-interval days)."""
    if len(dataset) == 0:
        return
    days = timeutil.central_wallclock(dataset.timestamps) // timeutil.MS_PER_DAY
    day_numbers, counts = np.unique(days, return_counts=True)
    # expected intervals: length of the market day in ms / interval length
    starts, _ = timeutil.central_to_utc(day_numbers * timeutil.MS_PER_DAY)
    ends, _ = timeutil.central_to_utc((day_numbers + 1) * timeutil.MS_PER_DAY)
    expected = (ends - starts) // dataset.interval_ms
    short = day_numbers[counts < expected]
    long = day_numbers[counts > expected]
    for label, bad in (("fewer", short), ("more", long)):
        if len(bad):
            first = np.datetime64(int(bad[0]), "D")
            log.warning(
                "%s: %d market days with %s intervals than the clock has (first %s)",
                dataset.name,
                len(bad),
                label,
                first,
            )
