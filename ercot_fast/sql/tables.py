"""The store as SQL tables: per data set one wide Arrow table (the store's own
price arrays, zero-copy, beside time columns computed once per instant) and a
long view of it, for analysts who should never do DST arithmetic:

=================  ========================================================
``interval_start`` the interval's first instant, UTC (``TIMESTAMP WITH TIME ZONE``)
``interval_end``   its end, UTC
``market_day``     the Central-time market day it belongs to (``DATE``)
``hour_ending``    1-24, as ERCOT numbers hours (the repeated fall-back hour is
                   2 twice; the spring-forward day has no 3)
``interval``       1-4, the quarter of the hour (``real_time_15min`` only)
``repeated_hour``  true for the second, CST, pass through the fall-back hour
``block``          its ERCOT trading block: ``5x16``, ``2x16`` or ``7x8``
``settlement_point`` / ``product``, ``price``: in the long views
=================  ========================================================

Long views: ``day_ahead``, ``real_time`` (hourly), ``real_time_15min`` and
``ancillary_services`` (``product`` instead of ``settlement_point``); a
missing price is no row. Wide tables: the same names with ``_wide``, one
DOUBLE column per settlement point or product (NULL where missing).
"""
from typing import NamedTuple

import numpy as np
import pyarrow as pa

from ercot_fast import timeutil
from ercot_fast.datasets import ANCILLARY_SERVICES, DATASETS, REAL_TIME_15MIN
from ercot_fast.query.blocks import TILING, block_codes

CATALOG = "ercot"  # where Flight SQL clients find the tables: ercot.main.day_ahead
SCHEMA = "main"
WIDE_SUFFIX = "_wide"
TIME_COLUMNS = ("interval_start", "interval_end", "market_day", "hour_ending", "interval", "repeated_hour", "block")


class SqlTable(NamedTuple):
    name: str
    kind: str  # "TABLE" (wide) or "VIEW" (long)
    dataset: str
    series_column: str  # settlement_point or product


def series_column(dataset):
    return "product" if dataset == ANCILLARY_SERVICES else "settlement_point"


def catalogue():
    """Every SQL table and view, long views first."""
    views = [SqlTable(name, "VIEW", name, series_column(name)) for name in DATASETS]
    tables = [SqlTable(name + WIDE_SUFFIX, "TABLE", name, series_column(name)) for name in DATASETS]
    return views + tables


def time_columns(dataset):
    """The time columns of a data set's instants, computed once (name -> Arrow array)."""
    stamps = np.ascontiguousarray(dataset.timestamps, dtype=np.int64)
    wallclock = timeutil.central_wallclock(stamps)
    of_day = wallclock % timeutil.MS_PER_DAY
    # the second pass through a wall-clock hour: an hour earlier it read the same
    repeated = wallclock == timeutil.central_wallclock(stamps - timeutil.MS_PER_HOUR)
    columns = {
        "interval_start": pa.Array.from_buffers(pa.timestamp("ms", tz="UTC"), len(stamps), [None, pa.py_buffer(stamps)]),
        "interval_end": pa.array(stamps + dataset.interval_ms, pa.timestamp("ms", tz="UTC")),
        "market_day": pa.array((wallclock // timeutil.MS_PER_DAY).astype(np.int32), pa.date32()),
        "hour_ending": pa.array((of_day // timeutil.MS_PER_HOUR + 1).astype(np.int32)),
        "interval": pa.array((of_day % timeutil.MS_PER_HOUR // (15 * timeutil.MS_PER_MINUTE) + 1).astype(np.int32)),
        "repeated_hour": pa.array(repeated),
        "block": pa.DictionaryArray.from_arrays(pa.array(block_codes(wallclock)), pa.array(TILING)).cast(pa.utf8()),
    }
    if dataset.name != REAL_TIME_15MIN:
        del columns["interval"]
    return columns


def wide_table(dataset):
    """The data set as one Arrow table: its time columns, then its price
    columns (the store's arrays, not copies), in the store's series order."""
    columns = time_columns(dataset)
    names = list(columns) + list(dataset.columns)
    return pa.table(list(columns.values()) + list(dataset.columns.values()), names=names)
