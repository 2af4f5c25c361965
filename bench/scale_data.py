"""Data sets for the scale curve: six years (2019-2024) of 15-minute real-time
prices for N settlement points, in the reference layout
(``flattened/RT_prices_15min_YYYY.parquet``, pyarrow's default Snappy).

The first 20 points are the demo data's (so the dashboards' queries name real
hubs); the others (``RN_0021``...: resource nodes, as real files hold) follow
one of them with a seeded premium and basis, whole cents as ERCOT publishes,
nulls where their model's are. 2,000 points are 3.4 GB of float64 prices.

A set is written once into ``<cache>/sp-<N>/`` and reused: the hidden marker
``.complete`` (the store ignores hidden files) says it was written whole.
"""
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from ercot_fast import demo

YEARS = range(2019, 2025)
_DEMO = "demo"  # the 20-point model the others follow, written once beside the sets
_COMPLETE = ".complete"


def scale_data(cache, points):
    """The data directory of ``points`` settlement points under ``cache``,
    written first if it is not there whole."""
    folder = Path(cache) / f"sp-{points}"
    if not (folder / _COMPLETE).exists():
        model = Path(cache) / _DEMO
        if not (model / _COMPLETE).exists():
            demo.write_demo_data(model, years=YEARS)
            (model / _COMPLETE).touch()
        for year in YEARS:
            _write_year(model, folder, year, points)
        (folder / _COMPLETE).touch()
    return folder


def _write_year(model, folder, year, points):
    table = pq.read_table(model / "flattened" / f"RT_prices_15min_{year}.parquet")
    names = [n for n in table.column_names if n != "datetime_ts"]
    columns = {n: table.column(n) for n in names[:points]}
    models = [table.column(n).to_numpy(zero_copy_only=False) for n in names]
    rng = np.random.default_rng([points, year])
    for index in range(len(columns), points):
        premium, basis = rng.normal(0, 0.03), rng.normal(0, 2.0)
        prices = np.round(models[index % len(models)] * (1 + premium) + basis, 2)
        columns[f"RN_{index + 1:04d}"] = pa.array(prices, from_pandas=True)  # NaN -> null
    out = pa.table({"datetime_ts": table.column("datetime_ts"), **columns},
                   metadata=table.schema.metadata)  # marked synthetic, as the demo data
    (folder / "flattened").mkdir(parents=True, exist_ok=True)
    pq.write_table(out, folder / "flattened" / f"RT_prices_15min_{year}.parquet")
