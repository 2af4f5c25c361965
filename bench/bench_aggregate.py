"""Aggregate queries against pandas, side by side in one run: a year of
15-minute real-time prices to monthly on-peak (5x16) means, for one and for
every settlement point of the data.

- ours: the query layer as the HTTP API runs it (``parse_query`` of the
  parameters, then ``run_query``: slice, block mask, aggregate kernel), and the
  same with the JSON rendered;
- pandas, from the same numpy arrays the store holds: a Central-time
  DatetimeIndex, the on-peak mask (hours ending 07-22, weekdays, NERC
  holidays), ``resample("MS").mean()``; and the mask and resample alone, with
  the DataFrame built beforehand (pandas' best case);
- ours with the pure-Python twin of the aggregate kernel (what the kernel buys).

Both answers are compared before anything is timed.

    python bench/bench_aggregate.py [--data-dir DIR] [--repeat 20] [--out bench/results/aggregate.json]
"""
import argparse

import numpy as np
import pandas as pd

import _harness as harness
from ercot_fast import kernels
from ercot_fast.demo import write_demo_data
from ercot_fast.kernels import _aggregate_py
from ercot_fast.query import run as query_run
from ercot_fast.query.blocks import nerc_holidays
from ercot_fast.query.parse import parse_query
from ercot_fast.render.json import render_json
from ercot_fast.store.load import load_store

YEAR = 2023


def query_params(points):
    return {"start_date": f"{YEAR}-01-01", "end_date": f"{YEAR}-12-31", "price_type": "real_time",
            "resolution": "15min", "hubs": ",".join(points), "aggregate": "monthly", "block": "onpeak"}


def pandas_frame(dataset, points):
    """The year's arrays of the store as pandas holds them: a Central-time index."""
    lo, hi = np.searchsorted(dataset.timestamps, [pd.Timestamp(f"{YEAR}-01-01", tz="America/Chicago").value // 10**6,
                                                  pd.Timestamp(f"{YEAR + 1}-01-01", tz="America/Chicago").value // 10**6])
    stamps = dataset.timestamps[lo:hi]
    index = pd.to_datetime(stamps, unit="ms", utc=True).tz_convert("America/Chicago")
    return pd.DataFrame({p: dataset.columns[p].slice(lo, hi - lo).to_numpy(zero_copy_only=False) for p in points}, index=index)


def pandas_onpeak_monthly(frame):
    index = frame.index
    hour_ending = index.hour + 1
    holidays = pd.DatetimeIndex([str(d) for y in (YEAR - 1, YEAR, YEAR + 1) for d in nerc_holidays(y)]).date
    off_day = (index.day_of_week >= 5) | np.isin(index.date, holidays)
    return frame[(hour_ending >= 7) & (hour_ending <= 22) & ~off_day].resample("MS").mean()


def competitors(store, points):
    dataset = store.datasets["real_time_15min"]
    params = query_params(points)
    frame = pandas_frame(dataset, points)

    def ours():
        return query_run.run_query(store, parse_query(params, store))

    def ours_twin():
        real = kernels.aggregate
        kernels.aggregate = _aggregate_py.aggregate
        try:
            return ours()
        finally:
            kernels.aggregate = real

    return {
        "ours (query layer)": ours,
        "ours, JSON rendered": lambda: render_json(store, parse_query(params, store)),
        "pandas from the arrays": lambda: pandas_onpeak_monthly(pandas_frame(dataset, points)),
        "pandas, frame prebuilt": lambda: pandas_onpeak_monthly(frame),
        "ours, kernel's pure-Python twin": ours_twin,
    }


def check_equal(store, points):
    """Our monthly on-peak means equal pandas' (to the last ulps of its float sums)."""
    calls = competitors(store, points)
    ours, theirs = calls["ours (query layer)"](), calls["pandas, frame prebuilt"]()
    assert len(ours.timestamps) == len(theirs) == 12, (len(ours.timestamps), len(theirs))
    for name, column in zip(ours.names, ours.columns):
        np.testing.assert_allclose(column.to_numpy(zero_copy_only=False), theirs[name].to_numpy(), rtol=1e-12)
    twin = calls["ours, kernel's pure-Python twin"]()
    assert all(a.equals(b) for a, b in zip(ours.columns, twin.columns))


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    harness.add_data_dir_option(parser)
    parser.add_argument("--repeat", type=int, default=20, help="timed rounds (default 20)")
    parser.add_argument("--out", default=str(harness.RESULTS / "aggregate.json"))
    args = parser.parse_args()
    with harness.scratch("bench-aggregate-") as scratch:
        store = load_store(harness.data_dir(args.data_dir, scratch, write_demo_data))
    results = {}
    for label, points in (("1 settlement point", ["HB_NORTH"]), ("every settlement point", list(store.settlement_points))):
        check_equal(store, points)
        calls = competitors(store, points)
        if args.repeat < 5:  # the quick check: the twin is slow
            calls.pop("ours, kernel's pure-Python twin")
        best, _ = harness.best_of(calls, args.repeat, harness.calls_per_round(calls))
        ours = best["ours (query layer)"]
        results[label] = {
            "points": len(points),
            "intervals": int(len(pandas_frame(store.datasets["real_time_15min"], points[:1]))),
            "seconds": best,
            "seconds_vs_ours": {name: seconds / ours for name, seconds in best.items()},
        }
        print(f"{label} ({len(points)}), a year of 15-minute intervals -> monthly on-peak means:")
        for name, seconds in best.items():
            print(f"  {name:<34} {seconds * 1e3:9.3f} ms   {seconds / ours:6.2f}x ours")
    report = {
        "machine": harness.machine("cpus", "processor", "python", pandas=pd.__version__, numpy=np.__version__),
        "command": harness.command_line("bench_aggregate.py", args, skip=("out",)),
        "results": results,
    }
    harness.write_results(args.out, report)


if __name__ == "__main__":
    main()
