"""Build reference-layout data directories (DATA.md section 1) from real ERCOT
report files, for tests: the shared CSVs in ../shared/data/ercot
(``DA_CSV``/``RT_CSV``, overridable with ERCOT_FAST_SHARED_DATA) or the small
fixture cut from them in tests/data (``FIXTURE_DA``/``FIXTURE_RT``, ZIPs).

Two flavours:
- ``legacy``: what the older pipeline wrote: naive Central wall-clock
  ``datetime_ts``, the repeated fall-back hour collapsed to its first (CDT) row,
  plus the DeliveryDate/DeliveryDateStr columns the loader must ignore;
- ``utc``: the DST-correct variant with a ``timestamp[ms, tz=UTC]`` column,
  holding both prices of the repeated hour.

Times are computed here with zoneinfo, row by row: independent of the
vectorised code under test.
"""
import csv
import datetime as dt
import functools
import io
import os
import zipfile
from collections import defaultdict
from pathlib import Path
from zoneinfo import ZoneInfo

import pyarrow as pa
import pyarrow.parquet as pq

# the real data beside the checkout; ERCOT_FAST_SHARED_DATA points elsewhere (tests need not find it:
# conftest.py's real_data fixture skips what needs it)
SHARED_DATA = Path(os.environ.get("ERCOT_FAST_SHARED_DATA") or Path(__file__).resolve().parents[2] / "shared" / "data" / "ercot")
DA_CSV = {year: SHARED_DATA / "np4_190_cd" / f"dam_spp_hub_lz_{year}.csv" for year in (2019, 2020, 2021)}
RT_CSV = {year: SHARED_DATA / "np6_905_cd" / f"rtm_spp_hub_lz_{year}-02.csv" for year in (2019, 2020, 2021)}
# the fixture in the repository (tests/data/README.md): report CSVs, each zipped alone
FIXTURE_DATA = Path(__file__).resolve().parent / "data"
FIXTURE_DA = tuple(sorted((FIXTURE_DATA / "np4_190_cd").glob("*.zip")))
FIXTURE_RT = tuple(sorted((FIXTURE_DATA / "np6_905_cd").glob("*.zip")))
CENTRAL = ZoneInfo("America/Chicago")
UTC = dt.timezone.utc


def ms(moment):
    """ms since the epoch of an aware datetime."""
    return int(moment.timestamp() * 1000)


def utc_ms(*args):
    """ms since the epoch of the UTC time ``datetime(*args)``."""
    return ms(dt.datetime(*args, tzinfo=UTC))


@functools.lru_cache(maxsize=None)
def interval_start(date_text, hour_ending, interval, repeated):
    """UTC start of an ERCOT interval: delivery date MM/DD/YYYY, hour ending
    1..24, 15-minute interval 1..4 (1 for hourly), DSTFlag Y on the repeat."""
    month, day, year = (int(x) for x in date_text.split("/"))
    local = dt.datetime(year, month, day) + dt.timedelta(hours=hour_ending - 1, minutes=15 * (interval - 1))
    # fold=1 is the second (CST) occurrence of an ambiguous wall-clock time
    return local.replace(tzinfo=CENTRAL, fold=1 if repeated else 0).astimezone(UTC)


def report_rows(path):
    """The rows (dicts) of a report CSV, or of every CSV member of a ZIP."""
    if Path(path).suffix.lower() == ".zip":
        with zipfile.ZipFile(path) as archive:
            for name in archive.namelist():
                with archive.open(name) as member:
                    yield from csv.DictReader(io.TextIOWrapper(member, encoding="utf-8", newline=""))
    else:
        with open(path, newline="") as f:
            yield from csv.DictReader(f)


def read_da_csv(path):
    """{(utc start, settlement point): price} of an NP4-190-CD CSV (or ZIP of them)."""
    prices = {}
    for row in report_rows(path):
        hour = int(row["HourEnding"].split(":")[0])
        start = interval_start(row["DeliveryDate"], hour, 1, row["DSTFlag"] == "Y")
        prices[start, row["SettlementPoint"]] = float(row["SettlementPointPrice"])
    return prices


def read_rt_csv(path):
    """The same for an NP6-905-CD CSV (or ZIP), without its LZEW rows."""
    prices = {}
    for row in report_rows(path):
        if row["SettlementPointType"] == "LZEW":  # the energy-weighted twin of each LZ row
            continue
        start = interval_start(
            row["DeliveryDate"], int(row["DeliveryHour"]), int(row["DeliveryInterval"]), row["DSTFlag"] == "Y"
        )
        prices[start, row["SettlementPointName"]] = float(row["SettlementPointPrice"])
    return prices


def read_all(read, paths):
    """One {(utc start, point): price} of several report files read with ``read``."""
    prices = {}
    for path in paths:
        prices.update(read(path))
    return prices


def wide_table(prices, flavour):
    """Pivot {(utc start, point): price} wide, in the given flavour."""
    by_time = defaultdict(dict)
    for (start, point), price in prices.items():
        by_time[start][point] = price
    points = sorted({p for _, p in prices})
    times = sorted(by_time)
    if flavour == "legacy":
        wallclock = {}
        for t in times:  # collapse the repeated hour: keep the first (CDT) row
            wallclock.setdefault(t.astimezone(CENTRAL).replace(tzinfo=None), t)
        local_times = sorted(wallclock)
        times = [wallclock[w] for w in local_times]
        columns = {
            "datetime_ts": pa.array(local_times, type=pa.timestamp("ns")),
            "DeliveryDate": pa.array([w.date() for w in local_times], type=pa.date32()),
            "DeliveryDateStr": pa.array([w.strftime("%Y-%m-%d-06:00") for w in local_times]),
        }
    else:
        columns = {"datetime_ts": pa.array(times, type=pa.timestamp("ms", tz="UTC"))}
    for point in points:
        columns[point] = pa.array([by_time[t].get(point) for t in times], type=pa.float64())
    return pa.table(columns)


def by_year(prices):
    """{Central year of the interval start: the prices of that year}, the years of the files."""
    years = defaultdict(dict)
    for (start, point), price in prices.items():
        years[start.astimezone(CENTRAL).year][start, point] = price
    return dict(sorted(years.items()))


def write_reference_dir(root, flavour, da_files=tuple(DA_CSV.values()), rt_files=tuple(RT_CSV.values())):
    """Write flattened/DA_prices_YYYY and RT_prices_15min_YYYY files under root,
    from NP4-190-CD and NP6-905-CD report files (by default the shared CSVs;
    FIXTURE_DA and FIXTURE_RT for the fixture)."""
    flattened = Path(root) / "flattened"
    flattened.mkdir(parents=True, exist_ok=True)
    for year, prices in by_year(read_all(read_da_csv, da_files)).items():
        pq.write_table(wide_table(prices, flavour), flattened / f"DA_prices_{year}.parquet")
    for year, prices in by_year(read_all(read_rt_csv, rt_files)).items():
        pq.write_table(wide_table(prices, flavour), flattened / f"RT_prices_15min_{year}.parquet")
    return Path(root)
