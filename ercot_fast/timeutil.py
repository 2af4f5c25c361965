"""Time, done right (DATA.md section 3): instants are int64 milliseconds since
the epoch, UTC; Central prevailing time (America/Chicago) only at the edges."""
import datetime as dt
import functools
import re
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

_EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.timezone.utc)
_SPACED_OFFSET = re.compile(r"(?<=\d) (\d\d:\d\d)$")
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


def market_day_start(day):
    """UTC ms of local midnight starting the Central market day ``day`` (a date)."""
    return to_ms(dt.datetime(day.year, day.month, day.day, tzinfo=CENTRAL))


def to_ms(moment):
    """Exact ms since the epoch of an aware datetime (no float rounding)."""
    return (moment - _EPOCH) // _ONE_MS


@functools.lru_cache(maxsize=4096)  # PERF: dashboards repeat the same bounds
def parse_instant(text, name, end_of_day):
    """Parse a query bound: RFC 3339 with an offset, or a bare date meaning the
    Central market day (its first instant, or with ``end_of_day`` its last ms)."""
    # NOTE: an unencoded "+05:00" in a URL arrives as " 05:00"; nothing else
    # can stand there, so the "+" is restored.
    text = _SPACED_OFFSET.sub(r"+\1", text.strip())
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
        raise QueryError(
            f"{name} is not a date or time: {text!r}",
            f"give {name} as a bare date (2023-01-01, the Central market day) or as "
            "RFC 3339 with an offset (2023-01-01T06:00:00Z, 2023-01-01T00:00:00-06:00)",
        ) from None
    except OverflowError:  # the last market day of year 9999 ends in year 10000
        raise QueryError(f"{name} is out of range: {text!r}", f"give {name} in years 0001 to 9998") from None
    raise QueryError(
        f"{name} has no UTC offset: {text!r}",
        f"add Z or an offset to {name} (2023-01-01T06:00:00Z or 2023-01-01T00:00:00-06:00), "
        "or give a bare date for the Central market day",
    )
