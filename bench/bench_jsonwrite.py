"""How fast does the JSON writer kernel write a year of hourly prices, against orjson?

Competitors, timed side by side in one run on the same seeded table:
  kernel   ercot_fast.kernels._jsonwrite.write_prices (ext/jsonwrite.pyx), prices as
           pyarrow float64 arrays with 1% nulls
  orjson   orjson.dumps({"timestamps": datetime64[ms] ndarray, "data": [{"hub", "prices": ndarray}]},
           OPT_SERIALIZE_NUMPY | OPT_NAIVE_UTC | OPT_UTC_Z), the same values without nulls
  twin     ercot_fast.kernels._jsonwrite_py.write_prices, for reference

Each is timed on the whole document and on the timestamps alone (no series);
the price arrays' share is the difference. Reported as ratios kernel/orjson.

    python bench/bench_jsonwrite.py --out bench/results/jsonwrite.json

from the repository root, with ercot_fast importable and built (pip install -e .,
or PYTHONPATH=. after python setup.py build_ext --inplace).
"""
import argparse
import json

import numpy as np
import orjson
import pyarrow as pa

import _harness as harness
from ercot_fast.kernels import _jsonwrite as kernel
from ercot_fast.kernels import _jsonwrite_py as twin

ORJSON_OPTIONS = orjson.OPT_SERIALIZE_NUMPY | orjson.OPT_NAIVE_UTC | orjson.OPT_UTC_Z
YEAR_2021_MS = 1_609_459_200_000


def make_table(rows, series, seed, non_cents):
    """Hourly timestamps from 2021-01-01 UTC and day-ahead-like prices: whole
    cents around $25 with a daily shape and rare spikes to $9,000, 1% null; a
    share non_cents of the values carry full float precision, as averages do."""
    rng = np.random.default_rng(seed)
    timestamps = YEAR_2021_MS + 3_600_000 * np.arange(rows, dtype=np.int64)
    hour = np.arange(rows) % 24
    names, columns, arrays = [], [], []
    for index in range(series):
        shape = 25 + 12 * np.sin((hour - 9) * np.pi / 12) + rng.normal(0, 4, rows)
        spikes = np.where(rng.random(rows) < 0.002, rng.uniform(500, 9000, rows), 0.0)
        prices = np.round(shape + spikes, 2)
        averaged = rng.random(rows) < non_cents
        prices[averaged] = prices[averaged] / 3
        nulls = rng.random(rows) < 0.01
        names.append(harness.SETTLEMENT_POINTS[index % len(harness.SETTLEMENT_POINTS)])
        columns.append(pa.array(prices, type=pa.float64(), mask=nulls))
        arrays.append(prices)
    return timestamps, names, columns, arrays


def competitors_for(args):
    """The competitors on the table of ``args``, each a call that returns its document."""
    timestamps, names, columns, arrays = make_table(args.rows, args.series, args.seed, args.non_cents)
    stamps64 = timestamps.astype("datetime64[ms]")
    data = [{"hub": name, "prices": prices} for name, prices in zip(names, arrays)]
    return {
        "kernel": lambda: kernel.write_prices(timestamps, None, names, columns),
        "orjson": lambda: orjson.dumps({"timestamps": stamps64, "data": data}, option=ORJSON_OPTIONS),
        "kernel_stamps": lambda: kernel.write_prices(timestamps, None, [], []),
        "orjson_stamps": lambda: orjson.dumps({"timestamps": stamps64, "data": []}, option=ORJSON_OPTIONS),
        "twin": lambda: twin.write_prices(timestamps, None, names, columns),
    }


def check_same_content(competitors):
    """The kernel's document is orjson's with the nulls in place."""
    ours, theirs = json.loads(competitors["kernel"]()), json.loads(competitors["orjson"]())
    assert ours["timestamps"] == theirs["timestamps"]
    for mine, other in zip(ours["data"], theirs["data"], strict=True):
        assert all(a is None or a == b for a, b in zip(mine["prices"], other["prices"], strict=True))


def report(args, competitors, seconds, prices):
    return {
        "question": "write a year of hourly prices for 20 settlement points as JSON: kernel vs orjson",
        "command": harness.command_line("bench_jsonwrite.py", args, skip=("out",)),
        "machine": harness.machine("python", "processor", orjson=orjson.__version__),
        "rows": args.rows,
        "series": args.series,
        "non_cents": args.non_cents,
        "output_bytes": {"kernel": len(competitors["kernel"]()), "orjson": len(competitors["orjson"]())},
        "seconds": seconds,
        "ratios": {
            "document kernel/orjson": seconds["kernel"] / seconds["orjson"],
            "timestamps kernel/orjson": seconds["kernel_stamps"] / seconds["orjson_stamps"],
            "prices kernel/orjson": prices["kernel"] / prices["orjson"],
            "document twin/kernel": seconds["twin"] / seconds["kernel"],
        },
        "ns_per_price": {who: 1e9 * prices[who] / (args.rows * args.series) for who in prices},
    }


def print_table(args, seconds, prices):
    print(f"{args.rows} rows x {args.series} series, {args.non_cents:.0%} not whole cents, best of {args.repeat}")
    print(f"{'what':<16}{'kernel ms':>12}{'orjson ms':>12}{'ratio':>8}")
    for what, ours_s, theirs_s in [
        ("document", seconds["kernel"], seconds["orjson"]),
        ("timestamps", seconds["kernel_stamps"], seconds["orjson_stamps"]),
        ("price arrays", prices["kernel"], prices["orjson"]),
    ]:
        print(f"{what:<16}{ours_s * 1e3:>12.3f}{theirs_s * 1e3:>12.3f}{ours_s / theirs_s:>8.2f}")
    print(f"twin (reference): {seconds['twin'] * 1e3:.1f} ms per document")


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=8760, help="hours (default: a year)")
    parser.add_argument("--series", type=int, default=20, help="settlement points")
    parser.add_argument("--seed", type=int, default=20210217)
    parser.add_argument("--repeat", type=int, default=7, help="rounds; the best is kept")
    parser.add_argument(
        "--non-cents", type=float, default=0.0,
        help="share of prices that are not whole cents (default 0: every price ERCOT publishes is whole cents)")
    parser.add_argument("--out", help="write the results as JSON to this file")
    args = parser.parse_args()

    competitors = competitors_for(args)
    check_same_content(competitors)
    seconds, _ = harness.best_of(competitors, args.repeat, harness.calls_per_round(competitors))
    prices = {who: seconds[who] - seconds[f"{who}_stamps"] for who in ("kernel", "orjson")}
    results = report(args, competitors, seconds, prices)
    print_table(args, seconds, prices)
    harness.write_results(args.out, results)


if __name__ == "__main__":
    main()
