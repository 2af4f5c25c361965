"""Flight tickets: UTF-8 JSON objects, checked and turned into a Selection
(a query's result and its Arrow layout).

Two forms:

- a query, with the HTTP parameters and their meanings (``price_type``,
  ``start_date``, ``end_date``, ``hubs`` as a list or a comma-separated string,
  ``resolution``, ``tz``; aliases accepted), checked by the query layer with
  the configured maximum range;
- a whole data set, ``{"dataset": "real_time_15min"}``: every instant and, unless
  ``hubs`` names some, every series of ``day_ahead``, ``real_time`` (hourly),
  ``real_time_15min`` or ``ancillary_services``. ``ercot_prices``, the older
  service's descriptor, is the day-ahead data set. These are the tickets
  ``list_flights`` hands out; no range limit applies to them. The bare name
  (``b"ercot_prices"``) works as a ticket too.

Both take ``"layout": "long"`` (the default) or ``"wide"`` (``render.arrow``),
``aggregate``, ``stat`` and ``block`` as the HTTP API does (a trading
block's intervals, or one value per Central-time period), ``"part": [i, n]``:
the i-th (from 0) of n runs of consecutive instants of the answer, which is
how ``get_flight_info`` spreads one pull over the replicas of
``--flight-advertise`` (one endpoint per replica, each its own part), and
``"compression": "zstd"`` or ``"lz4"``: the record batches' bodies compressed
in the Arrow IPC format (smaller on a slow network; off by default, as some
clients, the Arrow JDBC driver among them, cannot read it).
"""
import json

import numpy as np

from ercot_fast import errors
from ercot_fast.config import DEFAULT_MAX_RANGE_DAYS
from ercot_fast.datasets import DATASETS, DAY_AHEAD
from ercot_fast.errors import QueryError
from ercot_fast.query import run
from ercot_fast.query.parse import dataset_query, parse_query
from ercot_fast.render.arrow import COMPRESSIONS, LAYOUTS, LONG, Selection

LEGACY_DESCRIPTOR = "ercot_prices"  # the older service's descriptor: the day-ahead data set
DESCRIPTORS = DATASETS + (LEGACY_DESCRIPTOR,)
SHAPING_KEYS = ("aggregate", "stat", "block")
QUERY_KEYS = ("start_date", "end_date", "hubs", "price_type", "resolution", "tz", *SHAPING_KEYS, "layout", "part",
              "compression")
DATASET_KEYS = ("dataset", "hubs", *SHAPING_KEYS, "layout", "part", "compression")
MAX_PARTS = 256
TICKET_HINT = (
    'send a JSON object: {"start_date": "2023-01-01", "end_date": "2023-01-31", '
    '"hubs": ["HB_NORTH"], "price_type": "day_ahead"} or {"dataset": "real_time_15min"} '
    "(list_flights gives a ticket per data set)"
)
# what a query error is about -> where a Flight client finds what to change
HINTS = {
    errors.SETTLEMENT_POINTS: "see the available_hubs action",
    errors.TOO_LARGE: 'or ask for a whole data set with a ticket like {"dataset": "real_time_15min", '
    '"hubs": ["HB_NORTH"]} (no range limit)',
}


def parse_ticket(raw, store, max_range_days=DEFAULT_MAX_RANGE_DAYS):
    """Check a ticket (bytes) and run its query: a Selection, or QueryError
    saying what to change."""
    params = _ticket_object(raw)
    layout = params.get("layout", LONG)
    if not isinstance(layout, str) or layout.strip().lower() not in LAYOUTS:
        raise QueryError(f"unknown layout {layout!r}", 'use "layout": "long" (the default) or "layout": "wide"')
    layout = layout.strip().lower()
    compression = _compression(params.get("compression"))
    if "dataset" in params:
        _check_keys(params, DATASET_KEYS, "a data set ticket")
        name = params["dataset"]
        if not isinstance(name, str) or name not in DESCRIPTORS:
            raise QueryError(f"unknown data set {name!r}", f"use one of {', '.join(DESCRIPTORS)} (see list_flights)")
        checked = dataset_query(store, DAY_AHEAD if name == LEGACY_DESCRIPTOR else name, params.get("hubs"), params)
    else:
        _check_keys(params, QUERY_KEYS, "a query ticket")
        checked = parse_query(params, store, max_range_days)
    result = run.run_query(store, checked)
    if "part" in params:
        result = _part(result, *_checked_part(params["part"]))
    return Selection(result, layout, checked.tz, compression)


def _compression(value):
    """A ticket's ``compression``: one of COMPRESSIONS, or None (absent or null)."""
    if value is None:
        return None
    if not isinstance(value, str) or value.strip().lower() not in COMPRESSIONS:
        raise QueryError(f"unknown compression {value!r}",
                         'use "compression": "zstd" or "lz4", or leave it out for uncompressed batches')
    return value.strip().lower()


def dataset_ticket(name):
    """The ticket of a whole data set, as list_flights hands it out."""
    return json.dumps({"dataset": name}).encode()


def part_tickets(raw, parts):
    """The tickets of ``raw``'s answer cut into ``parts`` runs of instants."""
    params = _ticket_object(raw)
    return [json.dumps({**params, "part": [i, parts]}).encode() for i in range(parts)]


def _checked_part(part):
    if (not isinstance(part, list) or len(part) != 2 or not all(isinstance(x, int) and not isinstance(x, bool) for x in part)
            or not 0 <= part[0] < part[1] <= MAX_PARTS):
        raise QueryError(f"part {part!r} is not [i, n] with 0 <= i < n <= {MAX_PARTS}",
                         'send "part": [0, 2] for the first half of the instants, or leave it out for all of them')
    return part


def _part(result, index, parts):
    """The ``index``-th of ``parts`` runs of consecutive instants of ``result``."""
    bounds = np.linspace(0, len(result.timestamps), parts + 1).astype(np.int64)
    start, stop = int(bounds[index]), int(bounds[index + 1])
    return result._replace(timestamps=result.timestamps[start:stop],
                           columns=[column.slice(start, stop - start) for column in result.columns])


def message(exc):
    """The Flight error text of a QueryError: what is wrong, then what to change."""
    hint = HINTS.get(exc.about)
    return f"{exc.message}; {exc.details}; {hint}" if hint else f"{exc.message}; {exc.details}"


def _ticket_object(raw):
    try:
        text = bytes(raw).decode("utf-8").strip()
    except UnicodeDecodeError:
        raise QueryError("the ticket is not UTF-8 text", TICKET_HINT) from None
    if text in DESCRIPTORS:
        return {"dataset": text}
    try:
        params = json.loads(text)
    except ValueError as exc:
        raise QueryError(f"the ticket is not JSON ({exc})", TICKET_HINT) from None
    if not isinstance(params, dict):
        raise QueryError(f"the ticket is a JSON {type(params).__name__}, not an object", TICKET_HINT)
    return params


def _check_keys(params, allowed, what):
    unknown = [k for k in params if k not in allowed]
    if unknown:
        raise QueryError(
            f"unknown key{'s' if len(unknown) > 1 else ''} in the ticket: {', '.join(map(str, unknown))}",
            f"{what} takes {', '.join(allowed)}",
        )
