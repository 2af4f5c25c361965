"""The canonical layout ingest writes, and how it writes it.

``<data-dir>/ercot_fast/<data set>/<data set>_YYYY_MM.parquet`` for the data
sets ``day_ahead`` (hourly), ``real_time_15min`` and ``ancillary_services``
(hourly): one file per Central market month, ``datetime_ts`` as
``timestamp[ms, tz=UTC]`` (the true UTC start of each interval, sorted,
unique), then one float64 column per settlement point or ancillary service
(null where ERCOT published nothing). ``ercot_fast.store.load`` reads these files
with the highest precedence (see its docstring); real-time hourly means are
computed there from the 15-minute file.

The data directory is a local folder or an object-store prefix
(``ercot_fast.datadir``); files are named by their path below it. Every write
is whole: locally the new file goes to a temporary name in the same folder, is
flushed and fsynced, then renamed over the old one, and the folder is fsynced;
in an object store it is one upload, which readers see only once complete. A
reader, or a crash, sees the old file or the new one, never a torn one.
Temporaries of a killed local run are removed by the next run.
"""
import contextlib
import errno
import fnmatch
import fcntl
import hashlib
import logging
import tempfile
import time
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from ercot_fast import datasets
from ercot_fast.errors import IngestError

log = logging.getLogger(__name__)

TIME_TYPE = pa.timestamp("ms", tz="UTC")
METADATA = {b"ercot_fast.layout": b"ingest-v1"}
_LOCK_NAME = ".ingest.lock"


def partition_name(dataset, month):
    """The file of ``dataset`` for ``month`` (months since 1970-01), below the data directory."""
    year, month0 = divmod(int(month), 12)
    return datasets.partition_name(dataset, 1970 + year, month0 + 1)


def months_of_days(days):
    """Months since 1970-01 of market days given as days since 1970-01-01."""
    return np.asarray(days).astype("datetime64[D]").astype("datetime64[M]").astype(np.int64)


@contextlib.contextmanager
def locked(data_dir):
    """Hold the data directory's ingest lock (one ingest at a time) and clear
    the temporaries a killed run left behind. An object store has no locks:
    its lock is a file of this machine's temporary folder, so ingests into one
    bucket prefix must all run on one machine (one fetcher)."""
    if data_dir.local:
        root = Path(data_dir.path(datasets.INGEST_DIR))
        root.mkdir(parents=True, exist_ok=True)
        lock_path = root / _LOCK_NAME
    else:
        key = hashlib.sha256(data_dir.location.encode()).hexdigest()[:16]
        lock_path = Path(tempfile.gettempdir()) / f"ercot-fast-ingest-{key}.lock"
    with open(lock_path, "a+b") as lock:
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as exc:
            if exc.errno in (errno.EAGAIN, errno.EACCES):
                raise IngestError(f"another ingest is running on {data_dir} (lock {lock.name})") from None
            raise
        if data_dir.local:
            for stale in lock_path.parent.glob("*/.*.tmp"):
                log.warning("removed %s, left by an interrupted ingest", stale)
                stale.unlink(missing_ok=True)
        yield


def read_partition(data_dir, name):
    """(sorted int64 UTC ms, {series: float64 numpy with NaN}) of one file, or
    empty when it does not exist. A file that cannot be read is moved aside
    (``<name>.unreadable-<time>``, which nothing loads) and counts as empty."""
    if not data_dir.exists(name):
        return np.empty(0, dtype=np.int64), {}
    try:
        table = data_dir.read_table(name)
        times = _utc_ms(table.column("datetime_ts"))
        names = [column for column in table.column_names if column != "datetime_ts"]
        columns = {column: table.column(column).cast(pa.float64()).to_numpy() for column in names}
    except Exception as exc:  # noqa: BLE001 -- whatever is wrong, the new data must still land
        aside = f"{name}.unreadable-{time.strftime('%Y%m%dT%H%M%S')}"
        log.error("%s/%s is unreadable (%s): moved to %s and rebuilt from this run's input", data_dir, name, exc, aside)
        data_dir.move(name, aside)
        return np.empty(0, dtype=np.int64), {}
    return times, columns


def read_times(data_dir, name):
    """The sorted UTC ms of one partition file."""
    return _utc_ms(data_dir.read_table(name, columns=["datetime_ts"]).column(0))


def _utc_ms(timestamps):
    """int64 UTC ms of a timestamp column."""
    return timestamps.cast(TIME_TYPE).cast(pa.int64()).to_numpy()


def merge_partition(data_dir, name, dataset, instants, days, series, codes, prices):
    """Upsert new prices into one partition file.

    ``codes`` index ``series``; rows are unique per (series, instant). A new
    value replaces the stored one (ERCOT re-publishes corrected reports); a
    value equal to the stored one changes nothing, and a file nothing changed
    in is not rewritten. Returns (added, unchanged, {day: values changed},
    written, (times, columns) as merged).
    """
    old_times, old_columns = read_partition(data_dir, name)
    times = np.union1d(old_times, instants)
    where_old = np.searchsorted(times, old_times)
    columns = {}
    for series_name, values in old_columns.items():
        full = np.full(len(times), np.nan)
        full[where_old] = values
        columns[series_name] = full
    added = unchanged = 0
    changed_days = []
    order = np.argsort(codes, kind="stable")
    bounds = np.flatnonzero(np.diff(codes[order])) + 1
    for group in np.split(order, bounds) if len(order) else ():
        full = columns.setdefault(series[codes[group[0]]], np.full(len(times), np.nan))
        where = np.searchsorted(times, instants[group])
        before = full[where]
        fresh = np.isnan(before)
        same = before == prices[group]
        added += int(fresh.sum())
        unchanged += int(same.sum())
        changed_days.append(days[group][~fresh & ~same])
        full[where] = prices[group]
    changed = np.concatenate(changed_days) if changed_days else np.empty(0, dtype=np.int32)
    by_day = dict(zip(*(x.tolist() for x in np.unique(changed, return_counts=True))))
    written = bool(added or len(changed))
    if written:
        write_partition(data_dir, name, dataset, times, columns)
    return added, unchanged, by_day, written, (times, columns)


def write_partition(data_dir, name, dataset, times, columns):
    schema = pa.schema(
        [pa.field("datetime_ts", TIME_TYPE)] + [pa.field(name, pa.float64()) for name in sorted(columns)],
        metadata={**METADATA, b"ercot_fast.dataset": dataset.encode()},
    )
    arrays = [pa.array(times, TIME_TYPE)] + [pa.array(columns[name], from_pandas=True) for name in sorted(columns)]
    sink = pa.BufferOutputStream()
    pq.write_table(pa.Table.from_arrays(arrays, schema=schema), sink, compression="zstd")
    data_dir.write(name, sink.getvalue())


def partitions(data_dir, dataset):
    """The names of a data set's existing partition files, in time order."""
    folder = f"{datasets.INGEST_DIR}/{dataset}/"
    pattern = datasets.partition_glob(dataset)
    return [entry.relative for entry in data_dir.entries(folder)
            if fnmatch.fnmatchcase(entry.relative[len(folder):], pattern)]
