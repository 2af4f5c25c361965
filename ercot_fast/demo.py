"""Seeded, SYNTHETIC ERCOT prices in the reference layout, for demos and tests.

``write_demo_data(data_dir)`` writes one file per year and data set under
``<data_dir>/flattened/`` (docs/DATA.md, section 1) in the project's DST-correct
variant of the layout: ``datetime_ts`` is ``timestamp[ms, tz=UTC]`` holding the
true UTC instant at the START of each interval, and a year file holds exactly
the intervals of that year's Central market days (a market day runs from local
midnight to local midnight: 23 hours on the spring-forward day, 25 on the
fall-back day, where both 01:00 local hours are present).

The prices are invented, not ERCOT's. They imitate the market's shape (daily and
seasonal cycles, hub spreads, wind-driven negative prices in the West, scarcity
at the offer cap, a Winter-Storm-Uri-like emergency) so the service has
something realistic to serve without the real data. Every file says so in its
Arrow schema metadata (``ercot_fast.synthetic = true``). The same seed gives
byte-identical files; each year draws from its own stream ``(seed, year)``, so
a year's file does not depend on which other years were written with it.
"""
import logging
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import NamedTuple

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from ercot_fast.files import write_atomically
from ercot_fast.datasets import AS_PRODUCTS  # ECRS only in files from 2023
from ercot_fast.timeutil import CENTRAL, market_day_start

log = logging.getLogger(__name__)


#: settlement points of the DA and RT files, alphabetical (hubs, load zones, DC ties)
SETTLEMENT_POINTS = (
    "DC_E", "DC_L", "DC_N", "DC_R", "DC_S",
    "HB_BUSAVG", "HB_HOUSTON", "HB_HUBAVG", "HB_NORTH", "HB_PAN", "HB_SOUTH", "HB_WEST",
    "LZ_AEN", "LZ_CPS", "LZ_HOUSTON", "LZ_LCRA", "LZ_NORTH", "LZ_RAYBN", "LZ_SOUTH", "LZ_WEST",
)

ECRS_LAUNCH = date(2023, 6, 10)       # first market day with an ECRS price
HB_PAN_FIRST_DAY = date(2019, 4, 6)   # first market day with a Panhandle hub price
URI_START = datetime(2021, 2, 15, 0, tzinfo=CENTRAL)
URI_END = datetime(2021, 2, 19, 9, tzinfo=CENTRAL)  # end of the emergency pricing

PRICE_FLOOR = -50.0     # $/MWh: deep enough for the West's windy nights
MISSING_RATE = 0.0005   # share of prices left null, scattered

SECONDS_PER_HOUR = 3600
INTERVALS_PER_HOUR = 4  # real-time settlement intervals of 15 minutes

# Day-ahead level of a typical hour at the North hub, $/MWh, following gas prices.
_YEAR_LEVEL = {2019: 24.0, 2020: 18.0, 2021: 28.0, 2022: 58.0, 2023: 40.0, 2024: 26.0}
_DEFAULT_LEVEL = 30.0

# Relative price by Central clock hour 0-23: low overnight, evening peak.
_DAILY_SHAPE = np.array([
    0.78, 0.74, 0.71, 0.70, 0.71, 0.76, 0.86, 0.95, 0.97, 0.98, 1.00, 1.03,
    1.07, 1.12, 1.18, 1.26, 1.38, 1.52, 1.58, 1.50, 1.32, 1.15, 0.98, 0.86,
])

_HUBS_IN_HUB_AVERAGE = ("HB_HOUSTON", "HB_NORTH", "HB_SOUTH", "HB_WEST")

# Load zones and DC ties track a mix of hubs:
# point -> (hub weights, relative premium, noise in $/MWh).
_TRACKING = {
    "DC_E": ({"HB_NORTH": 1.0}, 0.00, 3.0),
    "DC_L": ({"HB_SOUTH": 1.0}, 0.01, 3.0),
    "DC_N": ({"HB_NORTH": 0.5, "HB_WEST": 0.5}, 0.00, 3.0),
    "DC_R": ({"HB_SOUTH": 1.0}, 0.02, 3.0),
    "DC_S": ({"HB_SOUTH": 1.0}, 0.02, 3.0),
    "LZ_AEN": ({"HB_NORTH": 0.5, "HB_SOUTH": 0.5}, 0.02, 0.4),
    "LZ_CPS": ({"HB_SOUTH": 1.0}, 0.03, 0.4),
    "LZ_HOUSTON": ({"HB_HOUSTON": 1.0}, 0.005, 0.2),
    "LZ_LCRA": ({"HB_NORTH": 0.4, "HB_SOUTH": 0.4, "HB_WEST": 0.2}, 0.015, 0.4),
    "LZ_NORTH": ({"HB_NORTH": 1.0}, 0.005, 0.2),
    "LZ_RAYBN": ({"HB_NORTH": 1.0}, 0.015, 0.3),
    "LZ_SOUTH": ({"HB_SOUTH": 1.0}, 0.03, 0.4),
    "LZ_WEST": ({"HB_WEST": 1.0}, 0.05, 0.8),
}

# Ancillary service -> (price with idle energy, share of the energy price), $/MW per hour.
_AS_PRICING = {
    "ECRS": (3.0, 0.18),
    "NSPIN": (1.0, 0.10),
    "REGDN": (1.0, 0.04),
    "REGUP": (2.5, 0.14),
    "RRS": (3.0, 0.18),
}


def write_demo_data(data_dir, seed=20190101, years=range(2019, 2025)):
    """Write a synthetic ERCOT data set under ``data_dir`` and return a summary.

    Writes ``flattened/DA_prices_YYYY.parquet`` (hourly), ``RT_prices_15min_YYYY.parquet``
    (15-minute) and ``AS_prices_YYYY.parquet`` (hourly) for each year, then
    ``README.txt``; each file is written to a temporary name and renamed into
    place. Returns ``{"data_dir", "seed", "years", "files", "rows", "bytes"}``
    where ``rows`` maps each data set (``DA_prices``, ``RT_prices_15min``,
    ``AS_prices``) to ``{year: row count}``.
    """
    data_dir = Path(data_dir)
    flattened = data_dir / "flattened"
    flattened.mkdir(parents=True, exist_ok=True)
    years = sorted(set(years))
    metadata = {
        b"ercot_fast.synthetic": b"true",
        b"ercot_fast.generator": b"ercot_fast.demo",
        b"ercot_fast.seed": str(seed).encode(),
    }
    files = []
    rows = {"DA_prices": {}, "RT_prices_15min": {}, "AS_prices": {}}
    for year in years:
        for data_set, table in _year_tables(year, seed, metadata).items():
            path = flattened / f"{data_set}_{year}.parquet"
            sink = pa.BufferOutputStream()
            pq.write_table(table, sink, compression="zstd")
            write_atomically(path, sink.getvalue())
            files.append(path)
            rows[data_set][year] = table.num_rows
            log.info("demo data: wrote %s (%d rows)", path, table.num_rows)
    readme = data_dir / "README.txt"
    write_atomically(readme, _readme(seed, years).encode())
    files.append(readme)
    return {
        "data_dir": str(data_dir),
        "seed": seed,
        "years": years,
        "files": [str(path) for path in files],
        "rows": rows,
        "bytes": sum(path.stat().st_size for path in files),
    }


def _price_cap(year):
    """ERCOT's system-wide offer cap, $/MWh: 9000 through 2021, 5000 from 2022."""
    return 9000.0 if year <= 2021 else 5000.0


# --- calendar -----------------------------------------------------------------


def _local_midnight(day):
    """UTC seconds of the Central midnight that starts market day ``day``."""
    return market_day_start(day) // 1000


@dataclass(frozen=True)
class _MarketHours:
    """The hours of one year's Central market days and their calendar."""

    day_starts: np.ndarray   # UTC seconds of each local midnight, then next year's first
    start: np.ndarray        # UTC seconds of each hour start
    day: np.ndarray          # market day of each hour, 0 = January 1
    clock_hour: np.ndarray   # Central clock hour 0-23 of each hour
    day_month: np.ndarray    # month 1-12 of each market day
    day_weekend: np.ndarray  # True on the Saturdays and Sundays


def _market_hours(year):
    first = date(year, 1, 1)
    n_days = (date(year + 1, 1, 1) - first).days
    day_starts = np.array(
        [_local_midnight(first + timedelta(days=k)) for k in range(n_days + 1)], dtype=np.int64
    )
    # Market days are back to back, so the year's hours are one even UTC range.
    start = np.arange(day_starts[0], day_starts[-1], SECONDS_PER_HOUR, dtype=np.int64)
    day = np.searchsorted(day_starts, start, side="right") - 1
    clock_hour = (start - day_starts[day]) // SECONDS_PER_HOUR
    # The clock jumps on the two DST days only: ask zoneinfo about their ~48 hours.
    dst_days = np.flatnonzero(np.diff(day_starts)[day] != 24 * SECONDS_PER_HOUR)
    clock_hour[dst_days] = [datetime.fromtimestamp(t, CENTRAL).hour for t in start[dst_days].tolist()]
    days = np.arange(np.datetime64(first), np.datetime64(first) + n_days)
    return _MarketHours(
        day_starts=day_starts,
        start=start,
        day=day,
        clock_hour=clock_hour,
        day_month=days.astype("datetime64[M]").astype(np.int64) % 12 + 1,
        day_weekend=(days.astype(np.int64) + 3) % 7 >= 5,  # 1970-01-01 was a Thursday
    )


def _season(day, peak_day, sharpness=6):
    """1 on the day of the year ``peak_day``, fading to 0 half a year away."""
    return ((1 + np.cos(2 * np.pi * (day - peak_day) / 365.25)) / 2) ** sharpness


# --- noise and scarcity ----------------------------------------------------------


def _mean_reverting(rng, n, persistence, scale, tail_df=None):
    """AR(1) noise: standard deviation ``scale`` for normal shocks, fat tails with
    Student-t shocks of ``tail_df`` degrees of freedom.

    PERF: vectorised as a convolution with the truncated impulse response
    persistence**k instead of a loop over the rows.
    """
    shocks = rng.standard_t(tail_df, n) if tail_df else rng.standard_normal(n)
    taps = persistence ** np.arange(int(np.log(1e-4) / np.log(persistence)) + 1)
    return np.convolve(shocks, taps)[:n] * scale * np.sqrt(1 - persistence**2)


def _scarcity_peaks(hours, rng):
    """UTC seconds of the peaks of a year's scarcity events: three summer late
    afternoons (weekdays of July and August) and two winter mornings."""
    summer_days = np.flatnonzero(np.isin(hours.day_month, (7, 8)) & ~hours.day_weekend)
    winter_days = np.flatnonzero(np.isin(hours.day_month, (1, 2, 12)))
    days = np.concatenate([rng.choice(summer_days, 3, replace=False), rng.choice(winter_days, 2, replace=False)])
    clock = np.concatenate([rng.uniform(16.0, 19.5, 3), rng.uniform(7.0, 9.0, 2)])
    # No clock change in those months: the clock time is the time since midnight.
    return hours.day_starts[days] + (clock * SECONDS_PER_HOUR).astype(np.int64)


def _scarcity(instants, peaks, height, width_hours, uri_shortfall, rng):
    """How far each price is pulled toward the offer cap, 0..1: a bump around each
    scarcity peak (heights above 1 stay at the cap a while), and the whole Uri emergency."""
    distance = (instants[None, :] - peaks[:, None]) / (width_hours * SECONDS_PER_HOUR)
    events = (rng.uniform(*height, (len(peaks), 1)) * np.exp(-(distance**2))).max(axis=0)
    uri = (instants >= URI_START.timestamp()) & (instants < URI_END.timestamp())
    return np.minimum(1.0, np.maximum(events, uri * (1 - uri_shortfall * rng.random(len(instants)))))


# --- prices ------------------------------------------------------------------------


class _Drivers(NamedTuple):
    """What moves the prices, one value per interval."""

    system: np.ndarray              # system energy price, $/MWh, before scarcity
    wind: np.ndarray                # West wind output, about 0..2
    houston_congestion: np.ndarray  # >= 0
    south_congestion: np.ndarray    # >= 0


def _day_ahead_drivers(hours, rng, level):
    n = len(hours.start)
    day_of_year = hours.day
    summer_afternoon = _season(day_of_year, 213) * np.exp(-(((hours.clock_hour - 17) / 2.5) ** 2))
    winter_morning = _season(day_of_year, 20) * np.exp(-(((hours.clock_hour - 7.5) / 1.5) ** 2))
    weather = np.exp(
        _mean_reverting(rng, len(hours.day_month), 0.7, 0.15)[hours.day] + _mean_reverting(rng, n, 0.8, 0.05)
    )
    system = (
        level
        * _DAILY_SHAPE[hours.clock_hour]
        * (1 + 1.4 * summer_afternoon + 0.4 * winter_morning)
        * np.where(hours.day_weekend[hours.day], 0.85, 1.0)
        * weather
    )
    night = (1 + np.cos(2 * np.pi * (hours.clock_hour - 3) / 24)) / 2
    wind = np.maximum(0.2 + 0.5 * night + 0.3 * _season(day_of_year, 105, 2) + _mean_reverting(rng, n, 0.97, 0.35), 0)
    congestion_season = 0.3 + summer_afternoon

    def congestion():
        return np.maximum(_mean_reverting(rng, n, 0.95, 1.0) - 0.5, 0) * congestion_season

    return _Drivers(system, wind, congestion(), congestion())


def _real_time_drivers(day_ahead, rng):
    """The day-ahead drivers per 15 minutes, with mean-reverting, fat-tailed deviations."""
    n = len(day_ahead.system) * INTERVALS_PER_HOUR
    system, wind, houston, south = (np.repeat(driver, INTERVALS_PER_HOUR) for driver in day_ahead)
    system = system * (1 + _mean_reverting(rng, n, 0.9, 0.06, tail_df=3)) + _mean_reverting(rng, n, 0.7, 1.5, tail_df=3)
    wind = np.maximum(1.3 * wind + _mean_reverting(rng, n, 0.9, 0.15), 0)
    return _Drivers(system, wind, houston, south)


def _hubs(drivers, rng, noise):
    system, wind, houston_congestion, south_congestion = drivers

    def jitter():
        return rng.normal(0.0, noise, len(system))

    west_discount = wind * (0.15 * np.maximum(system, 0) + 5)
    return {
        "HB_HOUSTON": system * (1.02 + 0.2 * houston_congestion) + jitter(),
        "HB_NORTH": system + jitter(),
        "HB_PAN": system - 1.3 * west_discount + jitter(),
        "HB_SOUTH": system * (1.01 + 0.2 * south_congestion) + jitter(),
        "HB_WEST": system - west_discount + jitter(),
    }


def _market_price(price, cap):
    """Within the floor and the cap, in cents."""
    # NOTE: + 0.0 turns the -0.0 of rounding tiny negatives into 0.0.
    return np.round(np.clip(price, PRICE_FLOOR, cap), 2) + 0.0


def _settlement_points(hubs, scarcity, cap, rng, noise):
    """All settlement points from the hub prices, after pulling them toward the cap
    by ``scarcity``; ``noise`` scales the load zones' and DC ties' basis noise."""
    n = len(scarcity)
    points = {hub: _market_price(price + scarcity * (cap - price), cap) for hub, price in hubs.items()}
    hub_average = np.mean([points[hub] for hub in _HUBS_IN_HUB_AVERAGE], axis=0)
    points["HB_HUBAVG"] = np.round(hub_average, 2) + 0.0
    points["HB_BUSAVG"] = _market_price(hub_average + 0.15 * noise * rng.standard_t(4, n), cap)
    for point, (hub_weights, premium, basis_noise) in _TRACKING.items():
        hub_mix = sum(weight * points[hub] for hub, weight in hub_weights.items())
        points[point] = _market_price(hub_mix * (1 + premium) + basis_noise * noise * rng.standard_t(4, n), cap)
    return {point: points[point] for point in SETTLEMENT_POINTS}


def _ancillary_services(energy, products, cap, rng):
    """Clearing prices that follow the energy price, so they spike with scarcity."""
    prices = {}
    for product in products:
        idle, share = _AS_PRICING[product]
        noise = np.exp(_mean_reverting(rng, len(energy), 0.8, 0.3))
        prices[product] = _market_price((idle + share * np.maximum(energy, 0)) * noise, cap)
    return prices


# --- files -------------------------------------------------------------------------------


def _year_tables(year, seed, metadata):
    """The DA, RT and AS tables of one year, keyed by data set."""
    rng = np.random.default_rng([seed, year])
    hours = _market_hours(year)
    cap = _price_cap(year)
    interval_start = (
        np.repeat(hours.start, INTERVALS_PER_HOUR)
        + np.tile(np.arange(INTERVALS_PER_HOUR) * SECONDS_PER_HOUR // INTERVALS_PER_HOUR, len(hours.start))
    )
    peaks = _scarcity_peaks(hours, rng)

    day_ahead_drivers = _day_ahead_drivers(hours, rng, _YEAR_LEVEL.get(year, _DEFAULT_LEVEL))
    day_ahead_scarcity = _scarcity(hours.start, peaks, (0.05, 0.3), 1.5, 0.02, rng)
    day_ahead = _settlement_points(_hubs(day_ahead_drivers, rng, 0.3), day_ahead_scarcity, cap, rng, 1.0)

    real_time_drivers = _real_time_drivers(day_ahead_drivers, rng)
    real_time_scarcity = _scarcity(interval_start, peaks, (1.2, 2.0), 0.75, 0.003, rng)
    real_time = _settlement_points(_hubs(real_time_drivers, rng, 0.6), real_time_scarcity, cap, rng, 1.5)

    products = [p for p in AS_PRODUCTS if p != "ECRS" or year >= ECRS_LAUNCH.year]
    ancillary = _ancillary_services(day_ahead["HB_NORTH"], products, cap, rng)

    pan_missing = _local_midnight(HB_PAN_FIRST_DAY)
    day_ahead["HB_PAN"][hours.start < pan_missing] = np.nan
    real_time["HB_PAN"][interval_start < pan_missing] = np.nan
    if "ECRS" in ancillary:
        ancillary["ECRS"][hours.start < _local_midnight(ECRS_LAUNCH)] = np.nan
    return {
        "DA_prices": _table(hours.start, day_ahead, rng, metadata),
        "RT_prices_15min": _table(interval_start, real_time, rng, metadata),
        "AS_prices": _table(hours.start, ancillary, rng, metadata),
    }


def _table(interval_start, prices, rng, metadata):
    """``datetime_ts`` (UTC) then the price columns, nulls scattered at MISSING_RATE."""
    time_type = pa.timestamp("ms", tz="UTC")
    columns = [pa.array(interval_start * 1000, time_type)]
    for price in prices.values():
        missing = np.isnan(price) | (rng.random(len(price)) < MISSING_RATE)
        columns.append(pa.array(price, pa.float64(), mask=missing))
    schema = pa.schema(
        [pa.field("datetime_ts", time_type)] + [pa.field(name, pa.float64()) for name in prices],
        metadata=metadata,
    )
    return pa.Table.from_arrays(columns, schema=schema)


def _readme(seed, years):
    return (
        "SYNTHETIC ERCOT PRICES - NOT REAL ERCOT DATA\n"
        "\n"
        f"Generated by ercot_fast (ercot_fast.demo.write_demo_data) with seed {seed}\n"
        f"for the years {', '.join(map(str, years))}. The same seed gives the same files.\n"
        "These are invented prices shaped like ERCOT's; they are not real ERCOT prices\n"
        "and must not be used for any market, trading or research decision.\n"
        "\n"
        "flattened/DA_prices_YYYY.parquet        day-ahead settlement point prices, hourly\n"
        "flattened/RT_prices_15min_YYYY.parquet  real-time settlement point prices, 15-minute\n"
        "flattened/AS_prices_YYYY.parquet        ancillary service clearing prices, hourly\n"
        "\n"
        "datetime_ts is timestamp[ms, tz=UTC]: the true UTC instant at the start of each\n"
        "interval. A year file holds the intervals of that year's Central (America/Chicago)\n"
        "market days, DST days included (23 and 25 hours). Every file carries the Arrow\n"
        "schema metadata ercot_fast.synthetic=true.\n"
    )
