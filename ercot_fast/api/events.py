"""Server-Sent Events of new intervals (``GET /api/stream``), in no server's
words: a subscription, checked like a ``/api/prices`` query without its range;
where a subscriber starts (``backfill=N``, or its ``Last-Event-ID``); and the
events that bring it up to the store it is shown, one per data set, each body
in the ``/api/prices`` shape.

An event's ``id`` is the newest instant the subscriber has been sent of each
data set it follows (RFC 3339, comma-separated for ``combined``: day-ahead,
real-time, ancillary), so a reconnect with ``Last-Event-ID`` resumes after
exactly those intervals: no gap, no duplicate.
"""
from typing import NamedTuple

from ercot_fast import timeutil
from ercot_fast.datasets import ANCILLARY_SERVICES, DAY_AHEAD, REAL_TIME
from ercot_fast.errors import QueryError
from ercot_fast.query.parse import COMBINED, HOURLY, parse_query
from ercot_fast.render.json import render_json

# /api/prices parameters a stream has no use for: it has no range and sends intervals as they are
NOT_STREAMED = ("start_date", "end_date", "aggregate", "stat", "block", "format", "layout")
MAX_BACKFILL = 10_000  # intervals of each data set sent on connect, at most
HEARTBEAT = b": heartbeat\n\n"
CONNECTED = b"retry: 3000\n: connected\n\n"  # flushes the headers; a dropped subscriber retries after 3 s


class Subscription(NamedTuple):
    """What one subscriber follows: per data set the query of its series."""

    datasets: tuple  # store data set names, in the id's order
    queries: tuple  # a query.parse.PriceQuery per data set (its range set per event)


def subscribe(params, store, max_range_days, max_series):
    """The subscription of ``params`` (HTTP parameters), checked as
    ``/api/prices`` checks them; QueryError saying what to change."""
    given = [name for name in NOT_STREAMED if params.get(name)]
    if given:
        raise QueryError(f"/api/stream takes no {', '.join(given)}",
                         "the stream sends new intervals as they arrive: drop them; backfill=N sends the latest N first")
    now = timeutil.now_ms()
    # NOTE: parse_query wants a range: the stream checks its other parameters with any valid one
    query = parse_query({**params, "start_date": str(now), "end_date": str(now)}, store, max_range_days, max_series)
    if query.price_type == COMBINED:
        parts = ((DAY_AHEAD, DAY_AHEAD, query.series), (REAL_TIME, REAL_TIME, query.series),
                 (ANCILLARY_SERVICES, ANCILLARY_SERVICES, ()))
        queries = tuple(query._replace(price_type=price_type, resolution=HOURLY, series=series)
                        for _, price_type, series in parts)
        return Subscription(tuple(name for name, _, _ in parts), queries)
    return Subscription((query.dataset,), (query,))


def backfill_count(text):
    """``backfill=N``: 0 when absent; QueryError unless 0..MAX_BACKFILL."""
    if text is None or not text.strip():
        return 0
    if not text.strip().isdigit() or int(text) > MAX_BACKFILL:
        raise QueryError(f"backfill {text!r} is not a number of intervals from 0 to {MAX_BACKFILL}",
                         "use backfill=96 for the latest 96 intervals of each data set, or drop it")
    return int(text)


def start(subscription, store, backfill=0, last_event_id=None):
    """Per data set, the newest instant the subscriber has seen: those of its
    ``Last-Event-ID``; else the newest loaded but ``backfill`` intervals (-1
    when it has seen nothing)."""
    if last_event_id:
        return parse_id(last_event_id, len(subscription.datasets))
    seen = []
    for name in subscription.datasets:
        timestamps = store.datasets[name].timestamps
        if len(timestamps) == 0:
            seen.append(-1)
        elif backfill >= len(timestamps):
            seen.append(int(timestamps[0]) - 1)
        else:
            seen.append(int(timestamps[-1 - backfill]))
    return tuple(seen)


def parse_id(text, count):
    """A ``Last-Event-ID`` (``event_id``'s text) -> its instants; QueryError when it is not one of ours."""
    parts = text.split(",")
    try:
        if len(parts) != count:
            raise ValueError(text)
        return tuple(timeutil.parse_instant(part, "Last-Event-ID", False) for part in parts)
    except (ValueError, QueryError):
        raise QueryError(f"Last-Event-ID {text[:80]!r} is not an id of this stream",
                         "send the id of the last event received, or none to start from the newest intervals") from None


def event_id(seen):
    return ",".join(timeutil.format_instant(ms) for ms in seen)


def catch_up(subscription, store, seen, max_range_days):
    """``(events, seen)``: the events (bytes, in SSE's text form) of every
    interval newer than ``seen`` in ``store``, one per data set that has any,
    and what the subscriber has seen after them. A subscriber further behind
    than ``max_range_days`` gets that many days, the newest."""
    events = []
    seen = list(seen)
    for i, (name, query) in enumerate(zip(subscription.datasets, subscription.queries)):
        timestamps = store.datasets[name].timestamps
        if len(timestamps) == 0 or int(timestamps[-1]) <= seen[i]:
            continue
        newest = int(timestamps[-1])
        first = max(seen[i] + 1, newest - max_range_days * timeutil.MS_PER_DAY + 1)
        body = render_json(store, query._replace(start_ms=first, end_ms=newest))
        seen[i] = newest
        events.append(b"event: %s\nid: %s\ndata: %s\n\n" % (name.encode(), event_id(seen).encode(), body))
    return events, tuple(seen)
