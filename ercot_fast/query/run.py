"""Run a checked PriceQuery against the store: slice the data sets' sorted
timestamps with the search kernel and pick the series (zero-copy views of the
store where the data allows); then keep a trading block's intervals and
aggregate them per period with the aggregate kernel, when the query asks."""
from typing import NamedTuple

import numpy as np
import pyarrow as pa

from ercot_fast import datasets, kernels
from ercot_fast.datasets import ANCILLARY_SERVICES, DAY_AHEAD, REAL_TIME
from ercot_fast.query.blocks import block_mask
from ercot_fast.query.parse import COMBINED
from ercot_fast.query.periods import period_edges


class PriceResult(NamedTuple):
    """What a query selects: instants and aligned float64 Arrow arrays."""

    timestamps: np.ndarray  # int64 ms, UTC (a view of the store where possible)
    names: list
    columns: list  # pyarrow float64 arrays, each len(timestamps)


def run_query(store, query):
    """Select what ``query`` asks for. Single-type results without a block or
    an aggregate are zero-copy views of the store."""
    result = _select(store, query)
    return _shaped(result, query) if query.shaped else result


def _shaped(result, query):
    """``result`` kept to the query's block, then aggregated per period: a
    period's instant is its start; periods run from the one of the first kept
    interval to the one of the last, each of them present (resample's grid)."""
    timestamps = np.ascontiguousarray(result.timestamps, dtype=np.int64)
    mask = None if query.block is None else block_mask(timestamps, query.block)
    if query.aggregate is None:
        keep = pa.array(mask)
        return PriceResult(timestamps[mask], result.names, [column.filter(keep) for column in result.columns])
    kept = timestamps if mask is None else timestamps[mask]
    if len(kept) == 0:
        return PriceResult(kept, result.names, [pa.array([], pa.float64()) for _ in result.columns])
    edges = period_edges(int(kept[0]), int(kept[-1]), query.aggregate)
    columns = [
        pa.array(kernels.aggregate(timestamps, edges, column, query.stat, mask), from_pandas=True)
        for column in result.columns
    ]
    return PriceResult(edges[:-1], result.names, columns)


def _select(store, query):
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
    ancillary = _select(store, query._replace(price_type=ANCILLARY_SERVICES, series=()))
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
