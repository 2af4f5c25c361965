"""Parse and check a price query, from HTTP parameters or a Flight ticket's
JSON object, against the loaded store: a PriceQuery, or a QueryError that says
what to change (in no transport's words)."""
from typing import NamedTuple

from ercot_fast import datasets, errors, timeutil
from ercot_fast.config import DEFAULT_MAX_RANGE_DAYS, DEFAULT_MAX_SERIES
from ercot_fast.datasets import AS_PRODUCTS, ANCILLARY_SERVICES, DAY_AHEAD, REAL_TIME, REAL_TIME_15MIN
from ercot_fast.errors import QueryError, RangeTooLargeError

COMBINED = "combined"
PRICE_TYPES = {
    "day_ahead": DAY_AHEAD,
    "da": DAY_AHEAD,
    "real_time": REAL_TIME,
    "rt": REAL_TIME,
    "ancillary_services": ANCILLARY_SERVICES,
    "as": ANCILLARY_SERVICES,
    "combined": COMBINED,
}
HOURLY = "hourly"
FIFTEEN_MINUTES = "15min"
#: aggregate= periods, Central-time market periods (query.periods)
AGGREGATES = ("hourly", "daily", "weekly", "monthly", "yearly")
#: stat= of an aggregate, mean by default (kernels.aggregate)
STATS = ("mean", "min", "max", "first", "last", "count")
MEAN = "mean"
#: block= names -> the ERCOT trading block (query.blocks)
BLOCKS = {"5x16": "5x16", "onpeak": "5x16", "2x16": "2x16", "7x8": "7x8", "7x24": "7x24", "offpeak": "offpeak"}
UTC = "UTC"
CENTRAL = timeutil.CENTRAL_NAME
_TIME_ZONES = {"utc": UTC, "z": UTC, CENTRAL.lower(): CENTRAL}
# data set -> (price_type, resolution) of the query that reads all of it
_DATASET_QUERY = {
    DAY_AHEAD: (DAY_AHEAD, HOURLY),
    REAL_TIME: (REAL_TIME, HOURLY),
    REAL_TIME_15MIN: (REAL_TIME, FIFTEEN_MINUTES),
    ANCILLARY_SERVICES: (ANCILLARY_SERVICES, HOURLY),
}


class PriceQuery(NamedTuple):
    """A checked query: instants in UTC ms, both ends inclusive. Hashable: it
    is the response cache's key."""

    price_type: str  # day_ahead, real_time, ancillary_services or combined
    start_ms: int
    end_ms: int
    series: tuple  # settlement points, or ancillary products (may be empty)
    resolution: str = HOURLY
    tz: str = UTC
    aggregate: str = None  # one of AGGREGATES, or None: the intervals themselves
    stat: str = None  # one of STATS with an aggregate
    block: str = None  # a value of BLOCKS, or None: every hour
    relative: bool = False  # a bound moves with the clock (now, today, ...)

    @property
    def dataset(self):
        """The store data set a single-type query reads."""
        if self.price_type == REAL_TIME and self.resolution == FIFTEEN_MINUTES:
            return REAL_TIME_15MIN
        return self.price_type

    @property
    def shaped(self):
        """True when a block or an aggregate reshapes the intervals."""
        return self.aggregate is not None or self.block is not None

    def cells(self):
        """How many prices the range holds at most: intervals x series (at least one)."""
        step = _interval_ms(self.price_type, self.resolution)
        return ((self.end_ms - self.start_ms) // step + 1) * max(1, len(self.series))

    def changes_at(self, now):
        """For a relative query: the instant (UTC ms) after ``now`` at which
        its bounds, resolved again, would select other intervals (the next
        interval start); None for a fixed range."""
        if not self.relative:
            return None
        step = _interval_ms(self.price_type, self.resolution)
        return (now // step + 1) * step


def _text(params, name, required=True):
    value = params.get(name)
    if type(value) is str:  # PERF: the common case first
        value = value.strip()
        if value:
            return value
    elif isinstance(value, (list, tuple)):  # repeated HTTP parameter
        value = ",".join(str(v) for v in value).strip()
        if value:
            return value
    elif value is not None:
        raise QueryError(f"{name} must be a string, not {type(value).__name__}", f"send {name} as text")
    if required:
        raise QueryError(f"{name} is required", f"add {name}=... to the query")
    return None


def _names(params, name):
    """A comma-separated string or a list of names, trimmed, empties dropped."""
    value = params.get(name)
    if value is None:
        return ()
    if isinstance(value, str):
        value = value.split(",")
    elif not isinstance(value, (list, tuple)) or not all(isinstance(v, str) for v in value):
        raise QueryError(f"{name} must be a list of names", f'send {name} as "HB_NORTH,HB_WEST" or a list of strings')
    return tuple(filter(None, map(str.strip, value)))


def parse_query(params, store, max_range_days=DEFAULT_MAX_RANGE_DAYS, max_series=DEFAULT_MAX_SERIES, now=None):
    """Check ``params`` (HTTP parameters, a JSON body or a Flight ticket's JSON
    object) against the store and return a PriceQuery. Raises QueryError
    saying what to change. ``now`` (UTC ms, default the clock) resolves
    relative bounds (``now-24h``, ``today``): to the interval grid, the start
    rounded up and the end down, which selects the same intervals and keeps
    the query equal (one cache entry) until the next interval starts."""
    raw_type = _text(params, "price_type")
    price_type = PRICE_TYPES.get(raw_type.lower())
    if price_type is None:
        raise QueryError(
            f"unknown price_type {raw_type!r}",
            "use one of day_ahead (da), real_time (rt), ancillary_services (as), combined",
        )
    resolution = (_text(params, "resolution", required=False) or HOURLY).lower()
    if resolution not in (HOURLY, FIFTEEN_MINUTES):
        raise QueryError(f"unknown resolution {resolution!r}", "use resolution=hourly or resolution=15min")
    if resolution == FIFTEEN_MINUTES and price_type != REAL_TIME:
        raise QueryError("resolution=15min is for real_time only", "drop resolution, or use price_type=real_time")
    now = timeutil.now_ms() if now is None else now
    start = timeutil.parse_bound(_bound_text(params, "start_date"), "start_date", False, now)
    end = timeutil.parse_bound(_bound_text(params, "end_date"), "end_date", True, now)
    step = _interval_ms(price_type, resolution)
    start_ms = -(-start.ms // step) * step if start.relative else start.ms
    end_ms = end.ms // step * step if end.relative else end.ms
    # NOTE: rounding can leave end < start (no interval lies between): an empty range
    if end.ms < start.ms:
        raise QueryError("end_date is before start_date", "swap start_date and end_date")
    if end_ms - start_ms >= max_range_days * timeutil.MS_PER_DAY:
        raise RangeTooLargeError(
            f"the range is longer than the maximum of {max_range_days} days",
            "ask for a shorter range in several requests",
        )
    raw_tz = _text(params, "tz", required=False) or UTC
    tz = _TIME_ZONES.get(raw_tz.lower())
    if tz is None:
        raise QueryError(f"unknown tz {raw_tz!r}", f"use tz=UTC (the default) or tz={CENTRAL}")
    series = _names(params, "hubs")
    if len(series) > max_series:
        raise QueryError(
            f"{len(series)} series asked for, more than the maximum of {max_series}",
            "ask for fewer hubs per request (duplicates count), in several requests",
            errors.TOO_LARGE,
        )
    if price_type != ANCILLARY_SERVICES and not series:
        raise QueryError("hubs is required", "add hubs, e.g. HB_NORTH,HB_HOUSTON", errors.SETTLEMENT_POINTS)
    series = _checked_series(store, price_type, series)
    return PriceQuery(price_type, start_ms, end_ms, series, resolution, tz, *_shaping(params), start.relative or end.relative)


def _interval_ms(price_type, resolution):
    """The interval grid of a query's data (combined: hourly)."""
    return timeutil.MS_PER_MINUTE * 15 if resolution == FIFTEEN_MINUTES else timeutil.MS_PER_HOUR


def _bound_text(params, name):
    """A bound's text; a JSON number (Flight, a POST body) is epoch ms."""
    value = params.get(name)
    if type(value) is str:  # PERF: the common case first
        return _text(params, name)
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    if value is not None and not isinstance(value, (str, list, tuple)):
        raise QueryError(f"{name} must be a string, not {type(value).__name__}",
                         f"send {name} as text, or as an integer of epoch milliseconds")
    return _text(params, name)


def _shaping(params):
    """(aggregate, stat, block) of the parameters, checked."""
    if "aggregate" not in params and "stat" not in params and "block" not in params:
        return None, None, None  # PERF: the intervals themselves, as most queries ask
    aggregate = choice(params, "aggregate", AGGREGATES)
    stat = choice(params, "stat", STATS)
    if stat is not None and aggregate is None:
        raise QueryError("stat needs an aggregate", f"add aggregate=daily (or {', '.join(AGGREGATES)}), or drop stat")
    if aggregate is not None and stat is None:
        stat = MEAN
    block = choice(params, "block", tuple(BLOCKS))
    return aggregate, stat, None if block is None else BLOCKS[block]


def choice(params, name, allowed, hint=None):
    """The parameter ``name``, lowercased, one of ``allowed``; None when absent
    or blank; else QueryError saying what to use (``hint``, or the list)."""
    value = _text(params, name, required=False)
    if value is None:
        return None
    if value.lower() not in allowed:
        raise QueryError(f"unknown {name} {value!r}", hint or f"use {name}= one of {', '.join(allowed)}")
    return value.lower()


def dataset_query(store, name, series=None, params=None):
    """The query of every instant of the data set ``name``, with ``series``
    (checked like a query's hubs) or all of its series, shaped by the
    aggregate, stat and block of ``params``; no range limit."""
    dataset = store.datasets[name]
    price_type, resolution = _DATASET_QUERY[name]
    if series is None:
        series = tuple(datasets.ancillary_products(dataset.columns)) if name == ANCILLARY_SERVICES else store.settlement_points
    else:
        series = _checked_series(store, price_type, _names({"hubs": series}, "hubs"))
    start, end = (int(dataset.timestamps[0]), int(dataset.timestamps[-1])) if len(dataset) else (0, -1)
    return PriceQuery(price_type, start, end, series, resolution, UTC, *_shaping(params or {}))


def _checked_series(store, price_type, series):
    if price_type == ANCILLARY_SERVICES:
        # API.md: settlement point names are accepted and do not filter
        # (older clients send their hubs with every price type); product
        # names filter; both at once is ambiguous
        points = [s for s in series if s in store.known_settlement_points]
        series = tuple(s.upper().removeprefix("AS_") for s in series if s not in store.known_settlement_points)
        if points and series:
            raise QueryError(
                f"hubs mixes settlement points ({', '.join(points)}) and ancillary products ({', '.join(series)})",
                "ancillary prices are system-wide: send only product names to filter them, "
                f"or only settlement points (they do not filter); products: {', '.join(AS_PRODUCTS)}",
            )
        unknown = [n for n in series if n not in store.datasets[ANCILLARY_SERVICES].columns]
        what, where, about = "ancillary product", f"use products that exist in the data: {', '.join(AS_PRODUCTS)}", None
    else:
        unknown = [n for n in series if n not in store.known_settlement_points]
        what, where, about = "settlement point", "use names that exist in the data", errors.SETTLEMENT_POINTS
    if unknown:
        raise QueryError(f"unknown {what}{'s' if len(unknown) > 1 else ''}: {', '.join(unknown)}", where, about)
    return series


