"""Run a checked PriceQuery against the store: slice the data sets' sorted
timestamps with the search kernel and pick the series (zero-copy views of the
store where the data allows)."""
from typing import NamedTuple

import numpy as np
import pyarrow as pa

from ercot_fast import datasets, kernels
from ercot_fast.datasets import ANCILLARY_SERVICES, DAY_AHEAD, REAL_TIME
from ercot_fast.query.parse import COMBINED


class PriceResult(NamedTuple):
    """What a query selects: instants and aligned float64 Arrow arrays."""

    timestamps: np.ndarray  # int64 ms, UTC (a view of the store where possible)
    names: list
    columns: list  # pyarrow float64 arrays, each len(timestamps)


def run_query(store, query):
    """Select what ``query`` asks for. Single-type results are zero-copy views
    of the store."""
    if query.price_type == COMBINED:
        return _combined(store, query)
    dataset = store.datasets[query.dataset]
    if query.price_type == ANCILLARY_SERVICES:
        timestamps, names, columns = _slice(dataset, query, query.series or datasets.ancillary_products(dataset.columns))
        if not query.series:  # only the products that have data in the range
            kept = [(n, c) for n, c in zip(names, columns) if c.null_count < len(c)]
            names, columns = [n for n, _ in kept], [c for _, c in kept]
        return PriceResult(timestamps, names, columns)
    return PriceResult(*_slice(dataset, query, query.series))


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
