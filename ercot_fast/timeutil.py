"""Time, done right (DATA.md section 3): instants are int64 milliseconds since
the epoch, UTC; Central prevailing time (America/Chicago) only at the edges.

The one place for the epoch, Central time, market days, and RFC 3339: parsing
query bounds (absolute, relative to now, epoch ms) and formatting instants
(``format_instant``, exact integer ms).
"""
import datetime as dt
import re
import time
from typing import NamedTuple
from zoneinfo import ZoneInfo

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from ercot_fast.errors import QueryError

CENTRAL_NAME = "America/Chicago"
CENTRAL = ZoneInfo(CENTRAL_NAME)
MS_PER_MINUTE = 60_000
MS_PER_HOUR = 3_600_000
MS_PER_DAY = 86_400_000

EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.timezone.utc)
EPOCH_DATE = EPOCH.date()
_SPACED_OFFSET = re.compile(r"(?<=\d) (\d\d:\d\d)$")
_EPOCH_MS = re.compile(r"-?\d{1,16}")
# Grafana's relative times: now, now-24h, now+1d, now-1M (units s m h d w M y)
# (an unencoded "+" in a URL arrives as a space)
_RELATIVE = re.compile(r"(?i:now)(?:([+ -])(\d{1,6})([smhdwMy]))?")
# the instants a bound may name: years 0001 to 9998, as for dates
_FIRST_MS = -62135596800000  # 0001-01-01T00:00:00Z
_LAST_MS = 253370764799999  # 9998-12-31T23:59:59.999Z
_FIXED_UNITS_MS = {"s": 1000, "m": MS_PER_MINUTE, "h": MS_PER_HOUR, "d": MS_PER_DAY, "w": 7 * MS_PER_DAY}
_DAY_WORDS = {"today": 0, "yesterday": -1}
_ONE_MS = dt.timedelta(milliseconds=1)
_CENTRAL_MS = pa.timestamp("ms", tz=CENTRAL_NAME)


def central_wallclock(utc_ms):
    """Central prevailing wall-clock time (naive, in ms) of each UTC instant."""
    instants = pa.array(np.asarray(utc_ms, dtype=np.int64), type=_CENTRAL_MS)
    return pc.local_timestamp(instants).cast(pa.int64()).to_numpy()


def utc_offset_minutes(utc_ms):
    """Minutes east of UTC in Central time at each instant (-300 CDT, -360 CST)."""
    utc_ms = np.asarray(utc_ms, dtype=np.int64)
    return ((central_wallclock(utc_ms) - utc_ms) // MS_PER_MINUTE).astype(np.int32)


def central_to_utc(wallclock_ms):
    """Convert naive Central wall-clock times (ms) to UTC instants.

    Returns ``(utc_ms, nonexistent)``. An ambiguous time (the repeated
    fall-back hour) is its first, CDT, occurrence. Times that do not exist
    (the skipped spring-forward hour) are flagged in ``nonexistent`` for the
    caller to drop and report.
    """
    naive = pa.array(np.asarray(wallclock_ms, dtype=np.int64), type=pa.timestamp("ms"))
    early = pc.assume_timezone(naive, CENTRAL_NAME, ambiguous="earliest", nonexistent="earliest")
    late = pc.assume_timezone(naive, CENTRAL_NAME, ambiguous="earliest", nonexistent="latest")
    early = early.cast(pa.int64()).to_numpy()
    return early, early != late.cast(pa.int64()).to_numpy()


def format_instant(ms, utc_offset_minutes=None):
    """RFC 3339 text of an instant: ``2021-02-17T06:00:00Z`` (``.mmm`` only
    when the ms are not whole seconds), or with ``utc_offset_minutes`` the
    local time and its offset (``2021-02-17T00:00:00-06:00``). Exact: integer
    arithmetic, no float seconds."""
    offset = utc_offset_minutes or 0
    local = EPOCH + dt.timedelta(milliseconds=int(ms) + 60_000 * offset)
    text = local.replace(tzinfo=None).isoformat(timespec="milliseconds" if ms % 1000 else "seconds")
    if utc_offset_minutes is None:
        return text + "Z"
    hours, minutes = divmod(abs(offset), 60)
    return f"{text}{'-' if offset < 0 else '+'}{hours:02d}:{minutes:02d}"


def now_ms():
    """The current instant, in ms since the epoch."""
    return time.time_ns() // 1_000_000


def day_date(day):
    """The date of a market day given as days since 1970-01-01."""
    return EPOCH_DATE + dt.timedelta(days=int(day))


def day_number(date):
    """Days since 1970-01-01 of a date (a market day)."""
    return (date - EPOCH_DATE).days


def weekday(days):
    """Day of the week (Monday 0 ... Sunday 6) of days since 1970-01-01 (a Thursday)."""
    return (days + 3) % 7


def day_name(day):
    """ISO text (2021-02-17) of a market day given as days since 1970-01-01."""
    return day_date(day).isoformat()


def market_day_start(day):
    """UTC ms of local midnight starting the Central market day ``day`` (a date)."""
    return to_ms(dt.datetime(day.year, day.month, day.day, tzinfo=CENTRAL))


def to_ms(moment):
    """Exact ms since the epoch of an aware datetime (no float rounding)."""
    return (moment - EPOCH) // _ONE_MS


class Bound(NamedTuple):
    """A parsed query bound: UTC ms, and whether it moves with the clock."""

    ms: int
    relative: bool


BOUND_FORMS = (
    "a bare date (2023-01-01, the Central market day), RFC 3339 with an offset "
    "(2023-01-01T06:00:00Z, 2023-01-01T00:00:00-06:00), epoch milliseconds (1672552800000), "
    "now, now-24h, now-7d, now-1M (units s m h d w M y), today or yesterday (Central market days)"
)


def parse_bound(text, name, end_of_day, now):
    """Parse a query bound given as text (``parse_instant``'s forms), epoch ms,
    ``now`` with an offset, ``today`` or ``yesterday``; ``now`` is the clock
    (UTC ms). A market day (a date, today, yesterday) means its first instant,
    or with ``end_of_day`` its last ms."""
    fixed = _FIXED_BOUNDS[end_of_day]
    bound = fixed.get(text)
    if bound is not None:
        return bound
    bound = _bound(text.strip(), name, end_of_day, now)
    if not _FIRST_MS <= bound.ms <= _LAST_MS:
        raise QueryError(f"{name} is out of range: {text!r}", f"give {name} in years 0001 to 9998")
    if not bound.relative:
        if len(fixed) >= _MAX_FIXED_BOUNDS:
            fixed.clear()
        fixed[text] = bound
    return bound


# PERF: dashboards repeat the same bounds: text -> Bound of the bounds that do
# not move with the clock, for a start (False) and an end (True); emptied when full
_FIXED_BOUNDS = {False: {}, True: {}}
_MAX_FIXED_BOUNDS = 4096


def _bound(text, name, end_of_day, now):
    if _EPOCH_MS.fullmatch(text):
        return Bound(int(text), False)
    relative = _RELATIVE.fullmatch(text) if text[:1] in "nN" else None  # PERF: only "now..." can match
    if relative:
        return Bound(_shifted(now, *relative.groups()), True)
    if text.lower() in _DAY_WORDS:
        day = central_date(now) + dt.timedelta(days=_DAY_WORDS[text.lower()])
        return Bound(market_day_start(day + dt.timedelta(days=1)) - 1 if end_of_day else market_day_start(day), True)
    return Bound(parse_instant(text, name, end_of_day), False)


def _shifted(now, sign, count, unit):
    """``now`` moved by ``count`` units; months and years on the Central calendar."""
    if sign is None:
        return now
    amount = int(count) * (-1 if sign == "-" else 1)
    sign = sign.replace(" ", "+")
    if unit in _FIXED_UNITS_MS:
        return now + amount * _FIXED_UNITS_MS[unit]
    months = amount * (12 if unit == "y" else 1)
    local = (EPOCH + dt.timedelta(milliseconds=now)).astimezone(CENTRAL)
    index = local.year * 12 + local.month - 1 + months
    year, month = divmod(index, 12)
    if not 1 <= year <= 9998:
        raise QueryError(f"{sign}{count}{unit} from now is out of range", "move by fewer months or years")
    day = min(local.day, _days_in_month(year, month + 1))
    moved = local.replace(tzinfo=None, year=year, month=month + 1, day=day).replace(tzinfo=CENTRAL)
    return to_ms(moved)


def _days_in_month(year, month):
    following = dt.date(year + month // 12, month % 12 + 1, 1)
    return (following - dt.timedelta(days=1)).day


def central_date(utc_ms):
    """The Central market day (a date) of an instant."""
    return (EPOCH + dt.timedelta(milliseconds=int(utc_ms))).astimezone(CENTRAL).date()


def parse_instant(text, name, end_of_day):
    """Parse a query bound: RFC 3339 with an offset, or a bare date meaning the
    Central market day (its first instant, or with ``end_of_day`` its last ms)."""
    # NOTE: an unencoded "+05:00" in a URL arrives as " 05:00"; nothing else
    # can stand there, so the "+" is restored.
    text = text.strip()
    if " " in text:  # PERF: the regular expression only where it can match
        text = _SPACED_OFFSET.sub(r"+\1", text)
    try:
        if len(text) == 10:
            day = dt.date.fromisoformat(text)
            if end_of_day:
                return market_day_start(day + dt.timedelta(days=1)) - 1
            return market_day_start(day)
        moment = dt.datetime.fromisoformat(text.replace("z", "Z"))
        if moment.tzinfo is not None:
            return to_ms(moment)
    except ValueError:
        raise QueryError(f"{name} is not a date or time: {text!r}", f"give {name} as {BOUND_FORMS}") from None
    except OverflowError:  # the last market day of year 9999 ends in year 10000
        raise QueryError(f"{name} is out of range: {text!r}", f"give {name} in years 0001 to 9998") from None
    raise QueryError(
        f"{name} has no UTC offset: {text!r}",
        f"add Z or an offset to {name} (2023-01-01T06:00:00Z or 2023-01-01T00:00:00-06:00), "
        "or give a bare date for the Central market day",
    )
