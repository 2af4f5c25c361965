"""The Central-time market periods of ``aggregate=``: hours, market days (23,
24 or 25 hours long), weeks starting Monday, calendar months and years, as
ascending UTC edges for the aggregate kernel."""
import numpy as np

from ercot_fast import timeutil

_CALENDAR_UNIT = {"daily": "D", "weekly": "W", "monthly": "M", "yearly": "Y"}


def period_edges(first_ms, last_ms, aggregate):
    """UTC ms edges ``e`` of the periods from the one holding ``first_ms`` to
    the one holding ``last_ms``: period k is ``[e[k], e[k+1])`` and starts at
    ``e[k]``."""
    if aggregate == "hourly":  # Central offsets are whole hours: UTC hours are Central hours
        hour = timeutil.MS_PER_HOUR
        return np.arange(first_ms - first_ms % hour, last_ms - last_ms % hour + 2 * hour, hour, dtype=np.int64)
    first_day, last_day = timeutil.central_wallclock(np.array([first_ms, last_ms], dtype=np.int64)) // timeutil.MS_PER_DAY
    unit = _CALENDAR_UNIT[aggregate]
    if unit == "W":
        first_week = first_day - timeutil.weekday(first_day)
        starts = np.arange(first_week, last_day + 8, 7, dtype=np.int64)
    else:
        days = np.array([first_day, last_day], dtype="datetime64[D]").astype(f"datetime64[{unit}]")
        starts = np.arange(days[0], days[1] + 2).astype("datetime64[D]").astype(np.int64)
    # local midnight is never in a DST gap (Central switches at 02:00)
    utc, _ = timeutil.central_to_utc(starts * timeutil.MS_PER_DAY)
    return utc
