"""Load a data directory's price files into a Store: per data set, merged,
sorted UTC arrays.

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
import concurrent.futures
import ctypes
import dataclasses
import hashlib
import logging
import os
import time

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from ercot_fast import timeutil
from ercot_fast.datasets import (
    ANCILLARY_SERVICES,
    COMBINED_ANNUAL,
    COMBINED_MONTHLY,
    COMBINED_PREFIXES,
    DAY_AHEAD,
    FLATTENED,
    INGESTED,
    INTERVAL_MS,
    REAL_TIME,
    REAL_TIME_15MIN,
    SYNTHETIC_KEY,
)
from ercot_fast.store import sources
from ercot_fast.store.model import Dataset, Store

log = logging.getLogger(__name__)


# file family -> precedence rank (rule 2: higher wins)
_FAMILY_RANK = {INGESTED: 4, FLATTENED: 3, COMBINED_ANNUAL: 2, COMBINED_MONTHLY: 1}
_TIME_COLUMNS = ("datetime_ts", "datetime")
_PARALLEL_FROM = 64  # series: fewer are done in this thread (a pool costs more than it saves)


@dataclasses.dataclass
class Contribution:
    """What one file contributes to one data set: its rows, sorted and
    de-duplicated, and their precedence."""

    dataset: str
    precedence: tuple
    timestamps: np.ndarray
    columns: dict  # name -> float64 Arrow array (null, or NaN, where missing)


def load_store(data_dir):
    """Load every known file below ``data_dir`` (a folder, an ``s3://`` URI or
    a ``datadir.DataDir``) into a Store.

    Unknown files are logged and ignored; unreadable files are logged and
    skipped. Raises DataLoadError only when the directory itself is unusable.
    """
    started = time.perf_counter()
    files = sources.price_files(data_dir)
    contributions = []
    files_loaded = 0
    skipped = []
    synthetic = False
    for file in files:
        try:
            table = file.read()
            from_file = _contributions(table, file)
        except Exception as exc:  # a corrupt file must never stop the service
            log.error("skipped unreadable file %s: %s", file.relative, exc)
            skipped.append(file.relative)
            continue
        files_loaded += 1
        synthetic |= (table.schema.metadata or {}).get(SYNTHETIC_KEY) == b"true"
        contributions.extend(from_file)
    # every settlement point is a series of each of its data sets (null where a
    # data set has no price for it), so a query never meets a missing column
    points = sorted({n for p in contributions if p.dataset != ANCILLARY_SERVICES for n in p.columns})
    datasets = {REAL_TIME_15MIN: _merge(REAL_TIME_15MIN, [p for p in contributions if p.dataset == REAL_TIME_15MIN], points)}
    contributions.append(_hourly_means_contribution(datasets[REAL_TIME_15MIN]))
    for name in (DAY_AHEAD, REAL_TIME):
        datasets[name] = _merge(name, [p for p in contributions if p.dataset == name], points)
    ancillary = [p for p in contributions if p.dataset == ANCILLARY_SERVICES]
    datasets[ANCILLARY_SERVICES] = _merge(ANCILLARY_SERVICES, ancillary, sorted({n for p in ancillary for n in p.columns}))
    for dataset in datasets.values():
        _report_day_lengths(dataset)
    version = _fingerprint(datasets)
    return_freed_memory()
    seconds = time.perf_counter() - started
    store = Store(datasets, str(data_dir), synthetic, files_loaded, seconds, version, tuple(skipped))
    log.info(
        "loaded %d files from %s in %.2f s: %s%s",
        files_loaded,
        data_dir,
        store.load_seconds,
        ", ".join(f"{d.name} {len(d)} rows x {len(d.columns)} series" for d in datasets.values()),
        " (SYNTHETIC demo data, not real ERCOT prices)" if synthetic else "",
    )
    return store


def return_freed_memory():
    """Hand freed memory (the file-reading scratch, a store once published)
    back to the OS, so that processes forked later do not inherit it (about
    60 MB on the demo data)."""
    pa.default_memory_pool().release_unused()
    try:
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):  # not glibc: nothing to trim
        pass


def _fingerprint(datasets):
    """A digest of every instant, series name and price: replicas that load
    the same data agree on it (it is the base of HTTP ETags)."""
    digest = hashlib.sha256()  # PERF: 2.5x blake2b's speed where the CPU has SHA instructions
    for name, dataset in sorted(datasets.items()):
        digest.update(name.encode())
        digest.update(dataset.timestamps)
        for series, array in sorted(dataset.columns.items()):
            digest.update(series.encode())
            for buffer in array.buffers():  # PERF: validity and values as they are, no copy
                if buffer is not None:
                    digest.update(buffer)
    return digest.hexdigest()[:16]


def _contributions(table, file):
    """Split one file into Contributions: per data set, its rows inside and
    outside the file's period."""
    relative, period = file.relative, file.period
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
        target, name = _series_of(field.name, file.kind.dataset)
        if target is None:
            log.info("%s: ignored column %s", relative, field.name)
            continue
        # PERF: kept as Arrow (the file's own buffers): the merge copies each value once
        values = pc.cast(table.column(field.name), pa.float64()).combine_chunks()
        columns_by_dataset.setdefault(target, {})[name] = values

    in_period = _in_period(wallclock, period)
    contributions = []
    for target, columns in columns_by_dataset.items():
        for inside in (True, False):
            rows = keep & (in_period == inside)
            if not rows.any():
                continue
            if not inside:
                log.warning("%s: %d rows outside %s", relative, int(rows.sum()), _period_name(period))
            precedence = (inside, _FAMILY_RANK[file.kind.family], relative)
            # PERF: a year file's rows are all its own: no copy
            rows_columns = columns if rows.all() else {n: v.filter(pa.array(rows)) for n, v in columns.items()}
            contributions.append(_contribution(target, precedence, utc[rows], rows_columns, relative))
    return contributions


def _series_of(column, dataset):
    """The (data set, series name) a price column feeds, or (None, None)."""
    if dataset is not None:
        if dataset == ANCILLARY_SERVICES and column.startswith("AS_"):
            column = column[3:]
        return dataset, column
    for prefix, target in COMBINED_PREFIXES.items():
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


def _contribution(dataset, precedence, timestamps, columns, relative):
    """Sort rows by instant; of duplicated instants keep the file's last row."""
    if np.all(timestamps[1:] > timestamps[:-1]):  # PERF: sorted and unique already (a year file): no copy
        return Contribution(dataset, precedence, timestamps, columns)
    order = np.argsort(timestamps, kind="stable")
    if np.any(order[1:] < order[:-1]):
        log.info("%s: rows not in time order (sorted)", relative)
    timestamps = timestamps[order]
    last = np.ones(len(timestamps), dtype=bool)
    last[:-1] = timestamps[1:] != timestamps[:-1]
    duplicates = len(timestamps) - int(last.sum())
    if duplicates:
        log.warning("%s: %d duplicate instants (last row kept)", relative, duplicates)
    keep = pa.array(order[last])
    return Contribution(dataset, precedence, timestamps[last], {n: v.take(keep) for n, v in columns.items()})


def _merge(name, contributions, names):
    """Merge contributions by the precedence rule into one Dataset of the series ``names``."""
    if contributions:
        timestamps = np.unique(np.concatenate([p.timestamps for p in contributions]))
    else:
        timestamps = np.empty(0, dtype=np.int64)
    ranked = sorted(contributions, key=lambda p: p.precedence)  # lowest first: later ones overwrite
    # PERF: where each contribution's rows go, found once for all its series: a
    # slice when they are a run of the merged instants (a year file: a copy)
    slots = [_slots(timestamps, piece.timestamps) for piece in ranked]
    # PERF: no instant in two contributions (one file per year, as usual):
    # every slot is written once, nothing needs the NaN fill or the precedence
    disjoint = sum(len(p.timestamps) for p in ranked) == len(timestamps)
    if not disjoint:
        slots = [np.arange(len(timestamps))[where] for where in slots]
    # PERF: one block for every series of the data set, each series a row of
    # it: an allocation this large gets huge pages (numpy asks for them), so
    # the first write of the values costs few page faults
    block = np.empty((len(names), len(timestamps))) if disjoint else np.full((len(names), len(timestamps)), np.nan)
    rows = dict(zip(names, block))

    def merge(series):
        merged = rows[series]
        for piece, where in zip(ranked, slots):
            values = piece.columns.get(series)
            if values is None:
                if disjoint:
                    merged[where] = np.nan
            elif disjoint:
                merged[where] = _values(values)
                if values.null_count:  # what lies under a null in the file's buffer is no price
                    merged[where] = np.where(_nulls(values), np.nan, merged[where])
            else:
                values = values.to_numpy(zero_copy_only=False)
                present = ~np.isnan(values)
                merged[where[present]] = values[present]
        return pa.array(merged, from_pandas=True)  # NaN -> null; a view of the block

    columns = _per_series(merge, names)
    return Dataset(name, INTERVAL_MS[name], timestamps, columns)


def _slots(timestamps, instants):
    """Where ``instants`` (sorted, unique, all in ``timestamps``) sit in
    ``timestamps``: a slice when they are a run of it, else their indexes."""
    if len(instants) == 0:
        return slice(0, 0)
    first = int(np.searchsorted(timestamps, instants[0]))
    run = timestamps[first:first + len(instants)]
    if len(run) == len(instants) and np.array_equal(run, instants):
        return slice(first, first + len(instants))
    return np.searchsorted(timestamps, instants)


def hourly_means(timestamps, columns):
    """Hourly means of 15-minute prices (``columns``: name -> float64 Arrow
    array aligned with ``timestamps``, as ``_merge`` builds them): the mean of each hour's non-null
    intervals, null when it has none. Returns (hour starts, name -> means).

    Prices in whole cents (all of ERCOT's) are summed exactly as integer
    cents and divided once, so a mean is the double nearest the true mean
    (12.935, not the 12.934999999999999 of a floating-point running sum).
    """
    hours = timestamps - timestamps % timeutil.MS_PER_HOUR  # Central offsets are whole hours
    starts, first = np.unique(hours, return_index=True)  # PERF: once for every series
    def mean(name):
        values = _values(columns[name])
        if len(values) == 0:
            return values
        present = ~np.isnan(values)
        values = np.where(present, values, 0.0)
        cents = np.round(values * 100.0)
        exact = bool(np.all(cents / 100.0 == values)) and np.all(np.abs(cents) < 2**53 / 16)
        counts = np.add.reduceat(present, first, dtype=np.int64)
        if exact:
            sums = np.add.reduceat(cents.astype(np.int64), first)
            scale = counts * 100
        else:
            sums = np.add.reduceat(values, first)
            scale = counts
        with np.errstate(invalid="ignore", divide="ignore"):
            return np.where(counts > 0, sums / np.maximum(scale, 1), np.nan)

    return starts, _per_series(mean, columns)


def _per_series(work, names):
    """{name: work(name)} for each of ``names``, on every CPU.

    PERF: numpy and Arrow let go of the GIL while they copy and compute, so
    threads spread a large store's series over the cores (as pyarrow's
    Parquet reader does)."""
    names = list(names)
    if len(names) < _PARALLEL_FROM:
        return {name: work(name) for name in names}
    with concurrent.futures.ThreadPoolExecutor(os.cpu_count()) as pool:
        return dict(zip(names, pool.map(work, names)))


def _values(array):
    """The values buffer of a float64 Arrow array as numpy, whatever lies
    under its nulls (NaN in the arrays ``_merge`` builds: it wrote NaN there).

    PERF: a view, not to_numpy's NaN-filled copy."""
    return np.frombuffer(array.buffers()[1], dtype=np.float64, count=len(array), offset=array.offset * 8)


def _nulls(array):
    """A numpy bool mask of the nulls of an Arrow array."""
    return array.is_null().to_numpy(zero_copy_only=False)


def _hourly_means_contribution(quarter_hourly):
    """Real-time hourly values computed from the 15-minute data set, at the
    lowest precedence: they fill only what no hourly file has."""
    starts, means = hourly_means(quarter_hourly.timestamps, quarter_hourly.columns)
    columns = {name: pa.array(values) for name, values in means.items()}  # NaN where no mean: missing
    return Contribution(REAL_TIME, (False, 0, ""), starts, columns)


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
