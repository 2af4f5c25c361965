"""The canonical layout ingest writes, and how it writes it.

``<data-dir>/ercot_fast/<data set>/<data set>_YYYY_MM.parquet`` for the data
sets ``day_ahead`` (hourly), ``real_time_15min`` and ``ancillary_services``
(hourly): one file per Central market month, ``datetime_ts`` as
``timestamp[ms, tz=UTC]`` (the true UTC start of each interval, sorted,
unique), then one float64 column per settlement point or ancillary service
(null where ERCOT published nothing). ``ercot_fast.store.load`` reads these files
with the highest precedence (see its docstring); real-time hourly means are
computed there from the 15-minute file.

Every write is atomic: the new file goes to a temporary name in the same
folder, is flushed and fsynced, then renamed over the old one, and the folder
is fsynced. A reader, or a crash, sees the old file or the new one, never a
torn one. Temporaries of a killed run are removed by the next run.
"""
import contextlib
import errno
import fcntl
import logging
import os
import time
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from ercot_fast import datasets
from ercot_fast.errors import IngestError
from ercot_fast.files import write_atomically

log = logging.getLogger(__name__)

TIME_TYPE = pa.timestamp("ms", tz="UTC")
METADATA = {b"ercot_fast.layout": b"ingest-v1"}
_LOCK_NAME = ".ingest.lock"


def partition_path(data_dir, dataset, month):
    """The file of ``dataset`` for ``month`` (months since 1970-01)."""
    year, month0 = divmod(int(month), 12)
    return Path(data_dir) / datasets.partition_name(dataset, 1970 + year, month0 + 1)


def months_of_days(days):
    """Months since 1970-01 of market days given as days since 1970-01-01."""
    return np.asarray(days).astype("datetime64[D]").astype("datetime64[M]").astype(np.int64)


@contextlib.contextmanager
def locked(data_dir):
    """Hold the data directory's ingest lock (one ingest at a time) and clear
    the temporaries a killed run left behind."""
    root = Path(data_dir) / datasets.INGEST_DIR
    root.mkdir(parents=True, exist_ok=True)
    with open(root / _LOCK_NAME, "a+b") as lock:
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as exc:
            if exc.errno in (errno.EAGAIN, errno.EACCES):
                raise IngestError(f"another ingest is running on {data_dir} (lock {lock.name})") from None
            raise
        for stale in root.glob("*/.*.tmp"):
            log.warning("removed %s, left by an interrupted ingest", stale)
            stale.unlink(missing_ok=True)
        yield


def read_partition(path):
    """(sorted int64 UTC ms, {series: float64 numpy with NaN}) of one file, or
    empty when it does not exist. A file that cannot be read is moved aside
    (``<name>.unreadable-<time>``, which nothing loads) and counts as empty."""
    if not path.exists():
        return np.empty(0, dtype=np.int64), {}
    try:
        table = pq.read_table(path)
        times = _utc_ms(table.column("datetime_ts"))
        names = [name for name in table.column_names if name != "datetime_ts"]
        columns = {name: table.column(name).cast(pa.float64()).to_numpy() for name in names}
    except Exception as exc:  # noqa: BLE001 -- whatever is wrong, the new data must still land
        aside = path.with_name(f"{path.name}.unreadable-{time.strftime('%Y%m%dT%H%M%S')}")
        log.error("%s is unreadable (%s): moved to %s and rebuilt from this run's input", path, exc, aside.name)
        os.replace(path, aside)
        return np.empty(0, dtype=np.int64), {}
    return times, columns


def read_times(path):
    """The sorted UTC ms of one partition file."""
    return _utc_ms(pq.read_table(path, columns=["datetime_ts"]).column(0))


def _utc_ms(timestamps):
    """int64 UTC ms of a timestamp column."""
    return timestamps.cast(TIME_TYPE).cast(pa.int64()).to_numpy()


def merge_partition(path, dataset, instants, days, series, codes, prices):
    """Upsert new prices into one partition file.

    ``codes`` index ``series``; rows are unique per (series, instant). A new
    value replaces the stored one (ERCOT re-publishes corrected reports); a
    value equal to the stored one changes nothing, and a file nothing changed
    in is not rewritten. Returns (added, unchanged, {day: values changed},
    written, (times, columns) as merged).
    """
    old_times, old_columns = read_partition(path)
    times = np.union1d(old_times, instants)
    where_old = np.searchsorted(times, old_times)
    columns = {}
    for name, values in old_columns.items():
        full = np.full(len(times), np.nan)
        full[where_old] = values
        columns[name] = full
    added = unchanged = 0
    changed_days = []
    order = np.argsort(codes, kind="stable")
    bounds = np.flatnonzero(np.diff(codes[order])) + 1
    for group in np.split(order, bounds) if len(order) else ():
        name = series[codes[group[0]]]
        full = columns.setdefault(name, np.full(len(times), np.nan))
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
        write_partition(path, dataset, times, columns)
    return added, unchanged, by_day, written, (times, columns)


def write_partition(path, dataset, times, columns):
    schema = pa.schema(
        [pa.field("datetime_ts", TIME_TYPE)] + [pa.field(name, pa.float64()) for name in sorted(columns)],
        metadata={**METADATA, b"ercot_fast.dataset": dataset.encode()},
    )
    arrays = [pa.array(times, TIME_TYPE)] + [pa.array(columns[name], from_pandas=True) for name in sorted(columns)]
    sink = pa.BufferOutputStream()
    pq.write_table(pa.Table.from_arrays(arrays, schema=schema), sink, compression="zstd")
    path.parent.mkdir(parents=True, exist_ok=True)
    write_atomically(path, sink.getvalue())


def partitions(data_dir, dataset):
    """Existing partition files of a data set, in time order."""
    return sorted((Path(data_dir) / datasets.INGEST_DIR / dataset).glob(datasets.partition_glob(dataset)))
