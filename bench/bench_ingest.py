"""How fast does `ercot-fast ingest` read ERCOT's reports, against pandas.read_csv of the same bytes?

Two inputs, timed side by side in one run:
  real CSVs  every ERCOT report CSV of ../shared/data/ercot: np4_190_cd/ (yearly and monthly),
             np6_905_cd/, and the raw NP4-180-ER / NP6-785-ER extracts of raw_ercot_reports/
  RT ZIPs    a generated year (2021: 23- and 25-hour days included) of NP6-905-CD real-time
             prices as ERCOT ships them: one ZIP per 15-minute interval (35,040 files), each
             holding one CSV of the 7 hubs and 8 load zones (LZ and LZEW rows), plus
             --resource-nodes synthetic resource nodes

Competitors:
  ingest      ercot_fast.ingest.ingest into an empty data directory: open, unzip, recognise,
              parse, DST-correct UTC instants, validate, de-duplicate, merge, atomic fsynced
              Parquet writes, validation report
  parse only  the same reading and parsing (sources.Reader, batches, formats.parse), nothing
              merged or written
  pandas      pandas.read_csv(io.BytesIO(data)) of each CSV (of each ZIP member), default
              options: parsing only, no times, no validation, nothing written
  pyarrow     pyarrow.csv.read_csv of the same bytes, default options: the parser's floor

Rows are CSV data rows, the same for every competitor. Every file is read once before
timing (page cache); each figure is the best of --repeat rounds, competitors round-robin.

    python bench/bench_ingest.py --out bench/results/ingest.json

from the repository root with ercot_fast installed (pip install -e .) and pandas.
"""
import argparse
import datetime as dt
import io
import shutil
import tempfile
import zipfile
from functools import partial
from pathlib import Path
from zoneinfo import ZoneInfo

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.csv as pacsv

import _harness as harness
import ercot_fast.ingest as ingest_module
from ercot_fast.ingest import sources, validation

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data" / "ercot"
CENTRAL = ZoneInfo("America/Chicago")
UTC = dt.timezone.utc
RT_HEADER = (
    "DeliveryDate,DeliveryHour,DeliveryInterval,SettlementPointName,SettlementPointType,SettlementPointPrice,DSTFlag\n"
)
HUB_TYPES = {"HB_BUSAVG": "SH", "HB_HUBAVG": "AH"}  # SettlementPointType; every other hub is HU


def real_csvs():
    """The report CSVs of the shared real data (not its LICENSE or name lists)."""
    files = sorted((SHARED / "np4_190_cd").rglob("*.csv")) + sorted((SHARED / "np6_905_cd").glob("*.csv"))
    raw = SHARED / "raw_ercot_reports"
    return files + sorted(raw.glob("DAM-*.csv")) + sorted(raw.glob("RTM-*.csv"))


def write_rt_intervals(folder, first_day, days, resource_nodes, seed):
    """One ZIP per 15-minute interval of ``days`` Central market days from
    ``first_day``, as ERCOT ships NP6-905-CD. Returns the number of CSV data rows."""
    rng = np.random.default_rng(seed)
    points = [(h, HUB_TYPES.get(h, "HU")) for h in harness.HUBS]
    points += [(z, t) for z in harness.LOAD_ZONES for t in ("LZ", "LZEW")]
    points += [(f"RN_{i:05d}", "RN") for i in range(resource_nodes)]
    level = rng.uniform(15, 40, len(points))
    instant = dt.datetime.combine(first_day, dt.time(), CENTRAL).astimezone(UTC)
    end = dt.datetime.combine(first_day + dt.timedelta(days=days), dt.time(), CENTRAL).astimezone(UTC)
    rows = 0
    while instant < end:
        local = instant.astimezone(CENTRAL)  # fold=1: the repeated hour, DSTFlag Y
        date, hour, interval = local.strftime("%m/%d/%Y"), local.hour + 1, local.minute // 15 + 1
        flag = "NY"[local.fold]
        prices = np.round(level * rng.lognormal(0, 0.3, len(points)), 2)
        body = "".join(
            f"{date},{hour},{interval},{name},{kind},{price:.2f},{flag}\n"
            for (name, kind), price in zip(points, prices)
        )
        name = f"cdr.00012301.0000000000000000.SPPHLZNP6905_{local:%Y%m%d_%H%M}{'_DST' if local.fold else ''}"
        with zipfile.ZipFile(folder / f"{name}.zip", "w", zipfile.ZIP_DEFLATED) as archive:
            archive.writestr(f"{name}.csv", RT_HEADER + body)
        rows += len(points)
        instant += dt.timedelta(minutes=15)
    return rows


def csv_members(path):
    """The bytes of each CSV in a file: the file itself, or each ZIP member."""
    if zipfile.is_zipfile(path):
        with zipfile.ZipFile(path) as archive:
            return [archive.read(m) for m in archive.infolist()]
    return [path.read_bytes()]


def with_pandas(paths):
    return sum(len(pd.read_csv(io.BytesIO(data))) for path in paths for data in csv_members(path))


def with_pyarrow(paths):
    return sum(pacsv.read_csv(pa.py_buffer(data)).num_rows for path in paths for data in csv_members(path))


def parse_only(paths):
    report = validation.Report("-", paths)
    run = ingest_module._Run("-", report, None, flush_rows=1 << 62)
    for item in sources.expand(paths):
        run.read(item)
    run.parse_pending()
    return sum(d.rows_read for d in report.datasets.values())


def full_ingest(paths, scratch):
    target = Path(tempfile.mkdtemp(dir=scratch))
    try:
        report = ingest_module.ingest(paths, target)
        return sum(d.rows_read for d in report.datasets.values())
    finally:
        shutil.rmtree(target)


def race(inputs, paths, repeat, scratch):
    """Best seconds of each competitor and the rows each read. ``inputs`` is
    what `ercot-fast ingest` is given (files or their folder), ``paths`` the
    files the baselines read."""
    competitors = {
        "ingest": lambda: full_ingest(inputs, scratch),
        "parse only": lambda: parse_only(inputs),
        "pandas.read_csv": lambda: with_pandas(paths),
        "pyarrow.csv.read_csv": lambda: with_pyarrow(paths),
    }
    for path in paths:  # into the page cache
        path.read_bytes()
    best, rows = harness.best_of(competitors, repeat)
    assert len(set(rows.values())) == 1, f"competitors read different rows: {rows}"
    return best, rows["ingest"]


def summarise(label, paths, seconds, rows):
    figures = {
        "files": len(paths),
        "bytes": sum(p.stat().st_size for p in paths),
        "rows": rows,
        "seconds": seconds,
        "rows_per_second": {name: rows / s for name, s in seconds.items()},
        "ratios": {
            "ingest / pandas.read_csv (time)": seconds["ingest"] / seconds["pandas.read_csv"],
            "parse only / pandas.read_csv (time)": seconds["parse only"] / seconds["pandas.read_csv"],
            "parse only / pyarrow.csv.read_csv (time)": seconds["parse only"] / seconds["pyarrow.csv.read_csv"],
        },
    }
    print(f"\n{label}: {len(paths)} files, {figures['bytes'] / 1e6:.1f} MB, {rows:,} rows")
    print(f"{'competitor':<22}{'seconds':>10}{'rows/s':>14}{'vs pandas':>11}")
    for name, s in seconds.items():
        print(f"{name:<22}{s:>10.3f}{rows / s:>14,.0f}{seconds['pandas.read_csv'] / s:>10.2f}x")
    return figures


def race_rt_zips(args, scratch):
    """Generate the year (or --days) of RT interval ZIPs into ``scratch`` and race on them."""
    zips = scratch / "rt_zips"
    zips.mkdir()
    first_day = dt.date(args.year, 1, 1)
    days = args.days or (dt.date(args.year + 1, 1, 1) - first_day).days
    write = partial(write_rt_intervals, zips, first_day, days, args.resource_nodes, args.seed)
    seconds, generated = harness.timed(write)
    print(f"\ngenerated {len(list(zips.iterdir())):,} RT interval ZIPs ({generated:,} rows) in {seconds:.1f} s")
    paths = sorted(zips.iterdir())
    seconds, rows = race([zips], paths, args.repeat, scratch)
    figures = summarise("RT interval ZIPs", paths, seconds, rows)
    figures.update(year=args.year, days=days, resource_nodes=args.resource_nodes)
    return figures


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--year", type=int, default=2021, help="year of generated RT ZIPs (default 2021)")
    parser.add_argument("--days", type=int, help="generate only the first DAYS days of the year (a quick run)")
    parser.add_argument("--resource-nodes", type=int, default=0, help="extra RN rows per interval file (default 0)")
    parser.add_argument("--seed", type=int, default=20210214)
    parser.add_argument("--repeat", type=int, default=3, help="rounds; the best is kept (default 3)")
    parser.add_argument("--scratch", help="folder for generated files and data directories (default: system temp)")
    parser.add_argument("--out", help="write the results as JSON to this file")
    args = parser.parse_args()

    results = {
        "question": "rows/s of ercot-fast ingest vs pandas.read_csv of the same bytes",
        "command": harness.command_line("bench_ingest.py", args, skip=("out", "scratch")),
        "machine": harness.machine("python", "processor", pandas=pd.__version__, pyarrow=pa.__version__),
    }
    with harness.scratch("bench_ingest_", args.scratch) as scratch:
        paths = real_csvs()
        seconds, rows = race(paths, paths, args.repeat, scratch)
        results["real_csvs"] = summarise("real CSVs", paths, seconds, rows)
        results["rt_interval_zips"] = race_rt_zips(args, scratch)
    harness.write_results(args.out, results)


if __name__ == "__main__":
    main()
