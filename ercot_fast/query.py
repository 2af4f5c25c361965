"""The query layer shared by HTTP and Flight: parse and check a price query,
then slice and pick the store's arrays (no copies where the data allows)."""
from typing import NamedTuple

import numpy as np
import pyarrow as pa

from ercot_fast import kernels, timeutil
from ercot_fast.errors import QueryError, RangeTooLargeError
from ercot_fast.store import (
    ANCILLARY_SERVICES,
    AS_PRODUCTS,
    DAY_AHEAD,
    REAL_TIME,
    REAL_TIME_15MIN,
)

COMBINED = "combined"
PRICE_TYPES = {
    "day_ahead": DAY_AHEAD,
    "da": DAY_AHEAD,
    "real_time": REAL_TIME,
    "rt": REAL_TIME,
    "ancillary_services": ANCILLARY_SERVICES,
    "as": ANCILLARY_SERVICES,
    "combined": COMBINED,
}
HOURLY = "hourly"
FIFTEEN_MINUTES = "15min"
UTC = "UTC"
CENTRAL = timeutil.CENTRAL_NAME
_TIME_ZONES = {"utc": UTC, "z": UTC, CENTRAL.lower(): CENTRAL}
DEFAULT_MAX_RANGE_DAYS = 3700


class PriceQuery(NamedTuple):
    """A checked query: instants in UTC ms, both ends inclusive. Hashable: it
    is the response cache's key."""

    price_type: str  # day_ahead, real_time, ancillary_services or combined
    start_ms: int
    end_ms: int
    series: tuple  # settlement points, or ancillary products (may be empty)
    resolution: str = HOURLY
    tz: str = UTC

    @property
    def dataset(self):
        """The store data set a single-type query reads."""
        if self.price_type == REAL_TIME and self.resolution == FIFTEEN_MINUTES:
            return REAL_TIME_15MIN
        return self.price_type


class PriceResult(NamedTuple):
    """What a query selects: instants and aligned float64 Arrow arrays."""

    timestamps: np.ndarray  # int64 ms, UTC (a view of the store where possible)
    names: list
    columns: list  # pyarrow float64 arrays, each len(timestamps)


def _text(params, name, required=True):
    value = params.get(name)
    if isinstance(value, (list, tuple)):  # repeated HTTP parameter
        value = ",".join(str(v) for v in value)
    if value is None or (isinstance(value, str) and not value.strip()):
        if required:
            raise QueryError(f"{name} is required", f"add {name}=... to the query")
        return None
    if not isinstance(value, str):
        raise QueryError(f"{name} must be a string, not {type(value).__name__}", f"send {name} as text")
    return value.strip()


def _names(params, name):
    """A comma-separated string or a list of names, trimmed, empties dropped."""
    value = params.get(name)
    if value is None:
        return ()
    if isinstance(value, str):
        value = value.split(",")
    elif not isinstance(value, (list, tuple)) or not all(isinstance(v, str) for v in value):
        raise QueryError(f"{name} must be a list of names", f'send {name} as "HB_NORTH,HB_WEST" or a list of strings')
    return tuple(filter(None, map(str.strip, value)))


def parse_query(params, store, max_range_days=DEFAULT_MAX_RANGE_DAYS):
    """Check ``params`` (HTTP parameters or a Flight ticket's JSON object)
    against the store and return a PriceQuery. Raises QueryError saying what
    to change."""
    raw_type = _text(params, "price_type")
    price_type = PRICE_TYPES.get(raw_type.lower())
    if price_type is None:
        raise QueryError(
            f"unknown price_type {raw_type!r}",
            "use one of day_ahead (da), real_time (rt), ancillary_services (as), combined",
        )
    start_ms = timeutil.parse_instant(_text(params, "start_date"), "start_date", end_of_day=False)
    end_ms = timeutil.parse_instant(_text(params, "end_date"), "end_date", end_of_day=True)
    if end_ms < start_ms:
        raise QueryError("end_date is before start_date", "swap start_date and end_date")
    if end_ms - start_ms >= max_range_days * timeutil.MS_PER_DAY:
        raise RangeTooLargeError(
            f"the range is longer than the maximum of {max_range_days} days",
            "ask for a shorter range in several requests, or use Arrow Flight for bulk pulls",
        )
    resolution = (_text(params, "resolution", required=False) or HOURLY).lower()
    if resolution not in (HOURLY, FIFTEEN_MINUTES):
        raise QueryError(f"unknown resolution {resolution!r}", "use resolution=hourly or resolution=15min")
    if resolution == FIFTEEN_MINUTES and price_type != REAL_TIME:
        raise QueryError("resolution=15min is for real_time only", "drop resolution, or use price_type=real_time")
    raw_tz = _text(params, "tz", required=False) or UTC
    tz = _TIME_ZONES.get(raw_tz.lower())
    if tz is None:
        raise QueryError(f"unknown tz {raw_tz!r}", f"use tz=UTC (the default) or tz={CENTRAL}")
    series = _names(params, "hubs")
    if price_type == ANCILLARY_SERVICES:
        series = tuple(s.upper().removeprefix("AS_") for s in series)
        _check_known(series, store.datasets[ANCILLARY_SERVICES].columns, "ancillary product")
    else:
        if not series:
            raise QueryError("hubs is required", "add hubs=HB_NORTH,HB_HOUSTON (see /api/available_hubs)")
        _check_known(series, store.known_settlement_points, "settlement point")
    return PriceQuery(price_type, start_ms, end_ms, series, resolution, tz)


def _check_known(names, known, what):
    unknown = [n for n in names if n not in known]
    if unknown:
        where = "/api/available_hubs" if what == "settlement point" else "the products ECRS, NSPIN, REGDN, REGUP, RRS"
        raise QueryError(
            f"unknown {what}{'s' if len(unknown) > 1 else ''}: {', '.join(unknown)}",
            f"use names that exist in the data; see {where}",
        )


def run_query(store, query):
    """Select what ``query`` asks for. Single-type results are zero-copy views
    of the store."""
    if query.price_type == COMBINED:
        return _combined(store, query)
    dataset = store.datasets[query.dataset]
    if query.price_type == ANCILLARY_SERVICES:
        timestamps, names, columns = _slice(dataset, query, query.series or ancillary_products(dataset))
        if not query.series:  # only the products that have data in the range
            kept = [(n, c) for n, c in zip(names, columns) if c.null_count < len(c)]
            names, columns = [n for n, _ in kept], [c for _, c in kept]
        return PriceResult(timestamps, names, columns)
    return PriceResult(*_slice(dataset, query, query.series))


def ancillary_products(dataset):
    """Ancillary products in the contract's order, then any others."""
    known = [p for p in AS_PRODUCTS if p in dataset.columns]
    return known + sorted(set(dataset.columns) - set(AS_PRODUCTS))


def _slice(dataset, query, names):
    lo, hi = kernels.slice_bounds(dataset.timestamps, query.start_ms, query.end_ms)
    columns = [dataset.columns[name].slice(lo, hi - lo) for name in names]
    return dataset.timestamps[lo:hi], list(names), columns


def _combined(store, query):
    """One hourly timeline: DA_<hub> and RT_<hub> per hub, then AS_<product>."""
    parts = []
    for price_type, prefix, names in (
        (DAY_AHEAD, "DA_", query.series),
        (REAL_TIME, "RT_", query.series),
    ):
        parts.append((prefix, _slice(store.datasets[price_type], query, names)))
    ancillary = run_query(store, query._replace(price_type=ANCILLARY_SERVICES, series=()))
    parts.append(("AS_", (ancillary.timestamps, ancillary.names, ancillary.columns)))

    timeline = parts[0][1][0]
    if not all(np.array_equal(timeline, p[0]) for _, p in parts[1:]):
        timeline = np.unique(np.concatenate([p[0] for _, p in parts]))
    by_name = {}
    for prefix, (timestamps, names, columns) in parts:
        for name, column in zip(names, columns):
            by_name[prefix + name] = _align(timeline, timestamps, column)
    names = [f"{p}{h}" for h in query.series for p in ("DA_", "RT_")]
    names += [f"AS_{n}" for n in ancillary.names]
    return PriceResult(timeline, names, [by_name[n] for n in names])


def _align(timeline, timestamps, column):
    """``column`` (at ``timestamps``) placed on ``timeline``, null elsewhere."""
    if len(timestamps) == len(timeline):
        return column  # same instants: timeline is a superset of equal length
    values = np.full(len(timeline), np.nan)
    values[np.searchsorted(timeline, timestamps)] = column.to_numpy(zero_copy_only=False)
    return pa.array(values, from_pandas=True)


def render_json(store, query):
    """The /api/prices body for ``query``, written by the JSON kernel."""
    if query.price_type in (DAY_AHEAD, REAL_TIME):
        # PERF: one data set, series by name: the kernel writes straight from
        # the store's own table, with no Arrow slices or result objects.
        dataset = store.datasets[query.dataset]
        lo, hi = kernels.slice_bounds(dataset.timestamps, query.start_ms, query.end_ms)
        numbers = [dataset.numbers[name] for name in query.series]
        if query.tz == UTC:
            return dataset.table.write(lo, hi, numbers)
        return dataset.table.write(lo, hi, numbers, timeutil.utc_offset_minutes(dataset.timestamps[lo:hi]))
    result = run_query(store, query)
    offsets = timeutil.utc_offset_minutes(result.timestamps) if query.tz == CENTRAL else None
    return kernels.write_prices(result.timestamps, offsets, result.names, result.columns)
