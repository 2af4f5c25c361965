"""Render a query's answer as the /api/prices JSON body, written by the JSON
kernel straight from the store's buffers."""
from ercot_fast import kernels, timeutil
from ercot_fast.datasets import DAY_AHEAD, REAL_TIME
from ercot_fast.query.parse import CENTRAL, UTC
from ercot_fast.query.run import run_query


def render_json(store, query):
    """The /api/prices body for ``query``, written by the JSON kernel."""
    if query.price_type in (DAY_AHEAD, REAL_TIME) and not query.shaped:
        # PERF: one data set, series by name: the kernel writes straight from
        # the store's own table, with no Arrow slices or result objects.
        dataset = store.datasets[query.dataset]
        lo, hi = kernels.slice_bounds(dataset.timestamps, query.start_ms, query.end_ms)
        columns = [dataset.column_index[name] for name in query.series]
        if query.tz == UTC:
            return dataset.table.write(lo, hi, columns)
        return dataset.table.write(lo, hi, columns, timeutil.utc_offset_minutes(dataset.timestamps[lo:hi]))
    result = run_query(store, query)
    offsets = timeutil.utc_offset_minutes(result.timestamps) if query.tz == CENTRAL else None
    return kernels.write_prices(result.timestamps, offsets, result.names, result.columns)
