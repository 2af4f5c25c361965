"""ERCOT's trading blocks, by the Central hour ending an interval falls in
(a 15-minute interval starting 06:15 lies in hour ending 07):

- ``5x16`` (on-peak): hours ending 07-22, Monday to Friday, except NERC holidays;
- ``2x16``: hours ending 07-22 on Saturdays, Sundays and NERC holidays;
- ``7x8``: hours ending 01-06 and 23-24, every day;
- ``7x24``: every hour; ``offpeak``: 2x16 and 7x8 (every hour not on-peak).

NERC holidays (NERC's "Additional Off-Peak Days", the definition of the
on-peak/off-peak products ERCOT power trades as on ICE): New Year's Day,
Memorial Day (last Monday of May), Independence Day, Labor Day (first Monday
of September), Thanksgiving (fourth Thursday of November) and Christmas Day;
one falling on a Sunday is observed on the Monday after, one on a Saturday
is not moved. Hours are wall-clock hours, so the repeated fall-back hour is
two intervals of hour ending 02 and the spring-forward day has no hour ending 03.
"""
import datetime as dt
import functools

import numpy as np

from ercot_fast import timeutil

_PEAK_HOURS = (7, 22)  # hours ending, inclusive


@functools.lru_cache(maxsize=None)
def nerc_holidays(year):
    """The NERC holidays of ``year`` as observed (dates)."""
    def weekday_on_or_after(month, day, weekday):
        first = dt.date(year, month, day)
        return first + dt.timedelta(days=(weekday - first.weekday()) % 7)

    may_31 = dt.date(year, 5, 31)
    fixed = [dt.date(year, 1, 1), dt.date(year, 7, 4), dt.date(year, 12, 25)]
    observed = [d + dt.timedelta(days=1) if d.weekday() == 6 else d for d in fixed]
    return tuple(sorted(observed + [
        may_31 - dt.timedelta(days=may_31.weekday()),  # last Monday of May
        weekday_on_or_after(9, 1, 0),  # first Monday of September
        weekday_on_or_after(11, 22, 3),  # fourth Thursday of November
    ]))


def block_mask(timestamps, block):
    """True for each UTC interval start in ``timestamps`` that lies in ``block``."""
    if block == "7x24":
        return np.ones(len(timestamps), dtype=bool)
    wallclock = timeutil.central_wallclock(timestamps)
    peak_hours = _peak_hours(wallclock)
    if block == "7x8":
        return ~peak_hours
    off_days = _off_days(wallclock)
    if block == "5x16":
        return peak_hours & ~off_days
    if block == "2x16":
        return peak_hours & off_days
    if block == "offpeak":
        return ~(peak_hours & ~off_days)
    raise ValueError(f"unknown block {block!r}")


#: the blocks that tile the week, as ``block_codes`` numbers them
TILING = ("5x16", "2x16", "7x8")


def block_codes(wallclock):
    """The index in TILING of the block of each interval, from its Central
    wall-clock start (ms, as ``timeutil.central_wallclock`` gives it)."""
    peak_hours = _peak_hours(wallclock)
    codes = np.full(len(wallclock), 2, dtype=np.int8)  # 7x8 unless a peak hour
    codes[peak_hours] = np.where(_off_days(wallclock)[peak_hours], 1, 0)
    return codes


def _peak_hours(wallclock):
    hour_ending = (wallclock % timeutil.MS_PER_DAY) // timeutil.MS_PER_HOUR + 1
    return (hour_ending >= _PEAK_HOURS[0]) & (hour_ending <= _PEAK_HOURS[1])


def _off_days(wallclock):
    """True on Saturdays, Sundays and NERC holidays (as observed)."""
    days = wallclock // timeutil.MS_PER_DAY
    off_days = timeutil.weekday(days) >= 5
    if len(days):
        years = range(timeutil.day_date(days.min()).year, timeutil.day_date(days.max()).year + 1)
        holidays = [timeutil.day_number(d) for year in years for d in nerc_holidays(year)]
        off_days |= np.isin(days, holidays)
    return off_days
