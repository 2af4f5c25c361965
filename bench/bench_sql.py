"""SQL engines for the Flight SQL service, side by side in one run on our queries:

- DuckDB over the store's Arrow arrays (registered, no copy; long views by UNPIVOT),
  as ``ercot_fast.sql.engine`` runs it;
- DataFusion over the same Arrow tables (long views by UNION ALL of one SELECT per
  settlement point: DataFusion has no UNPIVOT);
- the analyst's alternative: the same questions in DuckDB directly over the
  Parquet files of the data directory (UNPIVOT and Central time written by hand).

Queries: the monthly on-peak mean per settlement point over all years of
15-minute data; a one-week slice of two settlement points; the DA-RT spread of
a year, hour by hour (a join). Every engine's answer is checked against the
others before anything is timed; best of ``--repeat`` rounds, round-robin.

    python bench/bench_sql.py [--data-dir DIR] [--repeat 5] [--out bench/results/sql.json]
"""
import argparse
import time

import datafusion
import duckdb
import numpy as np

import _harness as harness
from ercot_fast.demo import write_demo_data
from ercot_fast.query.blocks import nerc_holidays
from ercot_fast.sql import tables
from ercot_fast.sql.engine import SqlEngine
from ercot_fast.store.load import load_store

QUERIES = {
    "monthly on-peak means, all 15-minute data": """
        SELECT settlement_point, date_part('year', market_day) AS y, date_part('month', market_day) AS m, avg(price) AS mean
        FROM real_time_15min WHERE block = '5x16' GROUP BY 1, 2, 3 ORDER BY 1, 2, 3""",
    "one week, two settlement points": """
        SELECT interval_start, settlement_point, price FROM real_time_15min
        WHERE settlement_point IN ('HB_NORTH', 'HB_HOUSTON')
          AND interval_start >= TIMESTAMP '2024-07-08 05:00:00+00' AND interval_start < TIMESTAMP '2024-07-15 05:00:00+00'
        ORDER BY 2, 1""",
    "DA-RT spread of a year, by hour": """
        SELECT d.interval_start, d.settlement_point, d.price - r.price AS spread
        FROM day_ahead d JOIN real_time r ON d.interval_start = r.interval_start AND d.settlement_point = r.settlement_point
        WHERE d.market_day BETWEEN DATE '2024-01-01' AND DATE '2024-12-31' ORDER BY 2, 1""",
}


def parquet_queries(data_dir):
    """The same questions over the Parquet files, as an analyst writes them."""
    files = {"real_time_15min": "RT_prices_15min_*", "day_ahead": "DA_prices_*"}
    holidays = ", ".join(f"DATE '{d}'" for y in range(2018, 2026) for d in nerc_holidays(y))

    def long(name):
        return (f"(SELECT datetime_ts AS interval_start, timezone('America/Chicago', datetime_ts) AS local, settlement_point, price "
                f"FROM (UNPIVOT (SELECT * FROM read_parquet('{data_dir}/flattened/{files[name]}.parquet')) "
                f"ON COLUMNS(* EXCLUDE (datetime_ts)) INTO NAME settlement_point VALUE price))")

    hourly_rt = (f"(SELECT time_bucket(INTERVAL 1 HOUR, interval_start) AS interval_start, settlement_point, avg(price) AS price "
                 f"FROM {long('real_time_15min')} GROUP BY 1, 2)")
    return {
        "monthly on-peak means, all 15-minute data": f"""
            SELECT settlement_point, year(local) AS y, month(local) AS m, avg(price) AS mean FROM {long('real_time_15min')}
            WHERE hour(local) + 1 BETWEEN 7 AND 22 AND isodow(local) <= 5 AND CAST(local AS DATE) NOT IN ({holidays})
            GROUP BY 1, 2, 3 ORDER BY 1, 2, 3""",
        "one week, two settlement points": f"""
            SELECT interval_start, settlement_point, price FROM {long('real_time_15min')}
            WHERE settlement_point IN ('HB_NORTH', 'HB_HOUSTON')
              AND interval_start >= TIMESTAMP '2024-07-08 05:00:00+00' AND interval_start < TIMESTAMP '2024-07-15 05:00:00+00'
            ORDER BY 2, 1""",
        "DA-RT spread of a year, by hour": f"""
            SELECT d.interval_start, d.settlement_point, d.price - r.price AS spread
            FROM {long('day_ahead')} d JOIN {hourly_rt} r ON d.interval_start = r.interval_start AND d.settlement_point = r.settlement_point
            WHERE CAST(d.local AS DATE) BETWEEN DATE '2024-01-01' AND DATE '2024-12-31' ORDER BY 2, 1""",
    }


def datafusion_context(store):
    """DataFusion over the same wide Arrow tables, long views as UNION ALL."""
    context = datafusion.SessionContext()
    for entry in tables.catalogue():
        if entry.kind != "TABLE":
            continue
        wide = tables.wide_table(store.datasets[entry.dataset])
        context.register_record_batches(entry.name, [wide.to_batches(max_chunksize=65_536)])
        times = ", ".join(f'"{n}"' for n in tables.TIME_COLUMNS if n in wide.schema.names)
        series = [n for n in wide.schema.names if n not in tables.TIME_COLUMNS]
        view = " UNION ALL ".join(f"SELECT {times}, '{n}' AS {entry.series_column}, \"{n}\" AS price FROM {entry.name} "
                                  f"WHERE \"{n}\" IS NOT NULL" for n in series)
        context.sql(f"CREATE VIEW {entry.dataset} AS {view}")
    return context


def rows_of(table):
    """An answer as comparable rows (floats rounded, instants as integers)."""
    columns = []
    for column in table.columns:
        values = column.to_numpy(zero_copy_only=False)
        if values.dtype.kind == "M":
            values = values.astype("datetime64[ms]").astype(np.int64)
        elif values.dtype.kind == "f":
            values = np.round(values, 6)
        columns.append(values.tolist())
    return list(zip(*columns))


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    harness.add_data_dir_option(parser)
    parser.add_argument("--repeat", type=int, default=5, help="timed rounds (default 5)")
    parser.add_argument("--out", default=str(harness.RESULTS / "sql.json"))
    args = parser.parse_args()
    with harness.scratch("bench-sql-") as scratch:
        data_dir = harness.data_dir(args.data_dir, scratch, write_demo_data)
        store = load_store(data_dir)
        started = time.perf_counter()
        ours = SqlEngine(store, time_limit_s=600, max_result_bytes=1 << 40)
        setup = {"duckdb over the store": time.perf_counter() - started}
        started = time.perf_counter()
        fusion = datafusion_context(store)
        setup["datafusion over the store"] = time.perf_counter() - started
        parquet = duckdb.connect()
        over_files = parquet_queries(data_dir)
        results = {}
        for name, sql in QUERIES.items():
            calls = {
                "duckdb over the store (ours)": lambda sql=sql: ours.execute(sql),
                "datafusion over the store": lambda sql=sql: fusion.sql(sql).to_arrow_table(),
                "duckdb over the Parquet files": lambda name=name: parquet.sql(over_files[name]).to_arrow_table(),
            }
            answers = {engine: rows_of(call()) for engine, call in calls.items()}
            first = answers["duckdb over the store (ours)"]
            for engine, rows in answers.items():
                assert len(rows) == len(first) and rows == first, f"{name}: {engine} answers differently"
            best, _ = harness.best_of(calls, args.repeat)
            ours_seconds = best["duckdb over the store (ours)"]
            results[name] = {"rows": len(first), "seconds": best, "vs_ours": {e: s / ours_seconds for e, s in best.items()}}
            print(f"{name} ({len(first):,} rows):")
            for engine, seconds in best.items():
                print(f"  {engine:<32} {seconds * 1e3:9.1f} ms  {seconds / ours_seconds:6.2f}x ours")
    for engine, seconds in setup.items():
        print(f"set-up, {engine}: {seconds * 1e3:.0f} ms")
    report = {
        "machine": harness.machine("cpus", "processor", "python", duckdb=duckdb.__version__, datafusion=datafusion.__version__),
        "command": harness.command_line("bench_sql.py", args, skip=("out",)),
        "setup_seconds": setup,
        "results": results,
    }
    harness.write_results(args.out, report)


if __name__ == "__main__":
    main()
