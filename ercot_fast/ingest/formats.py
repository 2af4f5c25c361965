"""ERCOT's own report formats (docs/DATA.md section 2): recognise a CSV by its
header, then turn a batch of its rows into prices at UTC instants plus counted
rejections.

No Python loop runs per row. pyarrow's CSV reader splits the bytes; columns of
few distinct values (dates, hours, intervals, flags, names) are
dictionary-encoded and decoded once per distinct value, then mapped back to the
rows with numpy indexing; the price column is cast in one vectorised pass.

A file without a DSTFlag (or Repeated Hour Flag) column reads as all N: the
two fall-back hours of such a file land on one instant and are reported as
duplicates.

Time (docs/DATA.md section 3): an hour ending ``h`` with DSTFlag ``f`` of
market day ``d`` starts at the UTC instant of Central wall-clock ``d 00:00 +
(h-1) h`` (the second, CST, occurrence when ``f`` is Y), and a real-time
interval ``k`` starts ``(k-1) * 15`` minutes later. The hour starts of a day are
worked out once per distinct date with zoneinfo.
"""
import csv
import dataclasses
import datetime as dt
import functools
import re

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv

from ercot_fast import datasets, timeutil

_UTC = dt.timezone.utc
_QUARTER_HOUR_MS = datasets.INTERVAL_MS[datasets.REAL_TIME_15MIN]

# Rejection reasons; a row gets the first that applies, in this order.
MALFORMED = "malformed row (wrong number of fields)"
BAD_DATE = "delivery date is not a date (MM/DD/YYYY)"
BAD_HOUR = "hour is not 1..24"
BAD_INTERVAL = "interval is not 1..4"
BAD_FLAG = "DST flag is not Y or N"
NO_SUCH_HOUR = "hour does not exist on this day (spring-forward)"
NOT_REPEATED = "DST flag Y on an hour that is not repeated"
NO_SERIES = "empty settlement point or product name"
NO_PRICE = "empty price"
BAD_PRICE = "price is not a number"
_REASONS = (
    None, BAD_DATE, BAD_HOUR, BAD_INTERVAL, BAD_FLAG, NO_SUCH_HOUR, NOT_REPEATED, NO_SERIES, NO_PRICE, BAD_PRICE,
)

# Rows left out on purpose (not errors).
# NOTE: NP6-905-CD publishes each load zone twice: type LZ, the load zone's
# settlement point price, and type LZEW, an energy-weighted variant under the
# same name (DC ties likewise as LZDCEW). They differ by a cent in about a
# quarter of the intervals. The LZ row is kept: it is the series the day-ahead
# report and the reference layout's LZ_* columns carry; keeping both under one
# name would make the value depend on row order.
ENERGY_WEIGHTED = "energy-weighted duplicate of a load zone (type LZEW/LZDCEW; the LZ row is kept)"
FILTERED = "settlement point not in --settlement-points"

# Instants that mark hours ERCOT does not have, far below any real instant and
# far apart, so that a real-time interval's offset keeps them apart.
_SENTINEL_SPAN = 1 << 40
_NO_SUCH_HOUR_MS = np.iinfo(np.int64).min
_NOT_REPEATED_MS = _NO_SUCH_HOUR_MS + 2 * _SENTINEL_SPAN

_NUMBER = r"^[+-]?(?:\d{1,3}(?:,\d{3})+|\d+)(?:\.\d*)?(?:[eE][+-]?\d+)?$|^[+-]?\.\d+(?:[eE][+-]?\d+)?$"
_DATE_US = re.compile(r"(\d{1,2})/(\d{1,2})/(\d{4})")
_DATE_ISO = re.compile(r"(\d{4})-(\d{1,2})-(\d{1,2})")
_HOUR_TEXT = re.compile(r"(\d{1,2})(?::00)?")  # 01:00 (day-ahead) or 1 (real-time)
_INTERVAL_TEXT = re.compile(r"(\d)")


@dataclasses.dataclass(frozen=True)
class Format:
    """One recognised report layout: where each field is in the header."""

    report: str  # ERCOT report id, e.g. NP4-190-CD
    dataset: str  # store data set the prices feed
    header: tuple  # column names as written
    date: int
    hour: int
    interval: int | None  # real-time only
    flag: int | None  # DSTFlag / Repeated Hour Flag, if the file has one
    series: int  # settlement point or ancillary service type
    series_type: int | None  # real-time SettlementPointType
    price: int

    @property
    def used(self):
        fields = (self.date, self.hour, self.interval, self.flag, self.series, self.series_type, self.price)
        return sorted({f for f in fields if f is not None})


def normalise(name):
    """``Delivery Date``, ``DeliveryDate`` and ``delivery_date`` are one name."""
    return re.sub(r"[\s_]+", "", name).lower()


@functools.lru_cache(maxsize=256)  # PERF: thousands of files share a few headers
def recognise(header_line):
    """``(Format, None)`` for the header line of a known report, else
    ``(None, why not)``. Only the header decides, never the file name."""
    if b"\x00" in header_line:
        return None, "not a text file"
    try:
        text = header_line.decode("utf-8-sig").rstrip("\r\n")
    except UnicodeDecodeError:
        return None, "not a text file (header is not UTF-8)"
    header = tuple(next(csv.reader([text]), []))
    at = {}
    for index, name in enumerate(header):
        at.setdefault(normalise(name), index)
    flag_name = next((n for n in ("dstflag", "repeatedhourflag") if n in at), None)
    flag = at.get(flag_name)
    historical = flag_name == "repeatedhourflag"  # the yearly NP4-180-ER / NP6-785-ER extracts

    def pick(report, dataset, needed, **fields):
        missing = [n for n in needed if n not in at]
        if missing:
            return None, f"looks like {report} but lacks {', '.join(missing)}"
        return Format(report, dataset, header, flag=flag, **{k: v and at.get(v) for k, v in fields.items()}), None

    if "ancillarytype" in at:
        return pick(
            "NP4-188-CD", datasets.ANCILLARY_SERVICES, ("deliverydate", "hourending", "mcpc"),
            date="deliverydate", hour="hourending", interval=None, series="ancillarytype", series_type=None,
            price="mcpc",
        )
    if "deliveryinterval" in at:
        return pick(
            "NP6-785-ER" if historical else "NP6-905-CD", datasets.REAL_TIME_15MIN,
            ("deliverydate", "deliveryhour", "settlementpointname", "settlementpointprice"),
            date="deliverydate", hour="deliveryhour", interval="deliveryinterval",
            series="settlementpointname", series_type="settlementpointtype", price="settlementpointprice",
        )
    if "settlementpoint" in at or "hourending" in at:
        return pick(
            "NP4-180-ER" if historical else "NP4-190-CD", datasets.DAY_AHEAD,
            ("deliverydate", "hourending", "settlementpoint", "settlementpointprice"),
            date="deliverydate", hour="hourending", interval=None, series="settlementpoint", series_type=None,
            price="settlementpointprice",
        )
    shown = ",".join(header)[:80]
    return None, f"not a header of NP4-190-CD, NP6-905-CD, NP4-188-CD, NP4-180-ER or NP6-785-ER ({shown!r})"


@dataclasses.dataclass
class Parsed:
    """One batch, parsed. Row numbers index the rows pyarrow kept (``rows``
    of them; malformed rows are not among them)."""

    rows: int
    instants: np.ndarray  # int64 UTC ms of each accepted row
    days: np.ndarray  # int32 market day (days since 1970-01-01) of each accepted row
    series: list  # names indexed by series_codes
    series_codes: np.ndarray  # int32
    prices: np.ndarray  # float64
    accepted: np.ndarray  # row number of each accepted row
    rejected: np.ndarray  # row numbers of rejected rows
    rejected_reasons: list  # reason of each rejected row
    malformed: list  # (pyarrow's row number or None, text) of rows with a wrong field count
    skipped: dict  # reason -> count


def parse(fmt, data, settlement_points=None):
    """Parse ``data`` (rows of ``fmt``, without the header line) into a Parsed.

    ``settlement_points`` (a set, or None for all) filters day-ahead and
    real-time rows. Raises pyarrow.ArrowInvalid when the bytes cannot be read
    as CSV text at all (e.g. invalid UTF-8).
    """
    table, malformed = _read_csv(fmt, data)
    fields = _decode(fmt, table)
    starts = _instants(fields)
    prices, empty, bad = _prices(_column(table, fmt.price).combine_chunks())
    suspect = _suspects(fields, starts, empty, bad)
    skip, skipped = _skips(fmt, table, fields, settlement_points)
    rejected = np.flatnonzero(suspect if skip is None else suspect & ~skip)
    if skip is None and not len(rejected):  # PERF: the common case, no gathers
        accepted = np.arange(fields.rows)
        instants, days, codes = starts, fields.days[fields.date_codes], fields.series_codes
    else:
        accepted = np.flatnonzero(~suspect if skip is None else ~(suspect | skip))
        instants, prices, codes = starts[accepted], prices[accepted], fields.series_codes[accepted]
        days = fields.days[fields.date_codes[accepted]]
    return Parsed(
        rows=fields.rows,
        instants=instants,
        days=days.astype(np.int32),
        series=fields.series,
        series_codes=codes,
        prices=prices,
        accepted=accepted,
        rejected=rejected,
        rejected_reasons=_reasons(fields, starts, empty, bad, rejected),
        malformed=malformed,
        skipped={k: v for k, v in skipped.items() if v},
    )


def _column(table, index):
    """The column of header field ``index``, as ``_read_csv`` names it."""
    return table.column(f"f{index}")


def _read_csv(fmt, data, use_threads=True):
    """(table of the fields ``fmt`` uses, malformed rows) of a batch's bytes."""
    names = [f"f{i}" for i in range(len(fmt.header))]
    used = [names[i] for i in fmt.used]
    malformed = []

    def on_invalid(row):
        # every number (to tell the lines of the good rows), the first few texts
        malformed.append((row.number, row.text if len(malformed) < _MALFORMED_TEXTS else ""))
        return "skip"

    # PERF: every column but the price has few distinct values: the reader
    # dictionary-encodes them as it goes, cheaper than strings then a hash pass.
    types = {n: _DICTIONARY for n in used}
    types[names[fmt.price]] = pa.string()
    table = pacsv.read_csv(
        pa.py_buffer(data),
        read_options=pacsv.ReadOptions(use_threads=use_threads, column_names=names),
        parse_options=pacsv.ParseOptions(invalid_row_handler=on_invalid),
        convert_options=pacsv.ConvertOptions(
            column_types=types,
            include_columns=used,
            strings_can_be_null=False,
            quoted_strings_can_be_null=False,
        ),
    )
    if use_threads and any(number is None for number, _ in malformed):
        # NOTE: pyarrow numbers invalid rows only when it reads on one thread.
        return _read_csv(fmt, data, use_threads=False)
    return table, malformed


@dataclasses.dataclass
class _Fields:
    """The dictionary-decoded fields of a batch: per row, a code into the
    values decoded once per distinct text (0 where a text is not valid)."""

    rows: int
    date_codes: np.ndarray
    days: np.ndarray  # days since 1970-01-01, _NO_DAY if not a date
    hour_codes: np.ndarray
    hours: np.ndarray  # hour ending 1..24
    interval_codes: np.ndarray | None  # None: not a real-time report
    intervals: np.ndarray  # 1..4
    flag_codes: np.ndarray
    flags: np.ndarray  # 0 N, 1 Y, -1 neither
    series_codes: np.ndarray  # int32 into series
    series: list  # distinct names, stripped and sorted
    blank_series: np.ndarray | None  # rows whose name is empty, None when none is


def _decode(fmt, table):
    """The _Fields of a table read by ``_read_csv``."""

    def decoded(index, decode, fill):
        """Per-row codes and the decoded value of each distinct text."""
        codes, texts = _dictionary(_column(table, index))
        return codes, np.array([decode(t) for t in texts] or [fill], dtype=np.int64)

    n = table.num_rows
    date_codes, days = decoded(fmt.date, _parse_date, 0)
    hour_codes, hours = decoded(fmt.hour, lambda t: _parse_int(t, 24, _HOUR_TEXT), 0)
    if fmt.interval is None:
        interval_codes, intervals = None, np.ones(1, dtype=np.int64)
    else:
        interval_codes, intervals = decoded(fmt.interval, lambda t: _parse_int(t, 4, _INTERVAL_TEXT), 1)
    if fmt.flag is None:
        flag_codes, flags = np.zeros(n, dtype=np.int32), np.zeros(1, dtype=np.int64)
    else:
        flag_codes, flags = decoded(fmt.flag, _parse_flag, 0)
    series_codes, series_texts = _dictionary(_column(table, fmt.series))
    series_names = [t.strip() for t in series_texts]
    unique_names = sorted(set(series_names))
    position = {name: i for i, name in enumerate(unique_names)}
    series_codes = np.array([position[s] for s in series_names] or [0], dtype=np.int32)[series_codes]
    blank_series = series_codes == 0 if unique_names[:1] == [""] else None  # sorted: "" comes first
    return _Fields(
        n, date_codes, days, hour_codes, hours, interval_codes, intervals, flag_codes, flags,
        series_codes, unique_names, blank_series,
    )


def _instants(fields):
    """UTC ms of the start of each row's interval, or a sentinel for a bad
    date or hour, or an hour ERCOT does not have."""
    # Hour starts of every distinct date, flattened [date, hour ending, flag]:
    # one gather gives each row's instant.
    starts_by_date = np.stack([_hour_starts(int(d)) for d in fields.days]).reshape(-1)
    flags = np.maximum(fields.flags, 0)[fields.flag_codes]
    starts = starts_by_date[(fields.date_codes.astype(np.int64) * 25 + fields.hours[fields.hour_codes]) * 2 + flags]
    if fields.interval_codes is not None:
        # NOTE: sentinels stay far below any instant
        starts += (fields.intervals[fields.interval_codes] - 1) * _QUARTER_HOUR_MS
    return starts


def _suspects(fields, starts, empty, bad):
    """Rows that some rejection reason applies to."""
    suspect = starts < _NOT_REPEATED_MS + _SENTINEL_SPAN
    suspect |= bad if empty is None else bad | empty
    if (fields.flags < 0).any():
        suspect |= (fields.flags < 0)[fields.flag_codes]
    if fields.interval_codes is not None and (fields.intervals == 0).any():
        suspect |= (fields.intervals == 0)[fields.interval_codes]
    if fields.blank_series is not None:
        suspect |= fields.blank_series
    return suspect


def _skips(fmt, table, fields, settlement_points):
    """(rows left out on purpose, or None when none is; {reason: rows})."""
    skip = None
    skipped = {}
    if fmt.series_type is not None:
        codes, texts = _dictionary(_column(table, fmt.series_type))
        skip = np.array([t.strip().upper().endswith("EW") for t in texts] or [False])[codes]
        skipped[ENERGY_WEIGHTED] = int(skip.sum())
    if settlement_points is not None and fmt.dataset != datasets.ANCILLARY_SERVICES:
        unwanted = np.array([s not in settlement_points for s in fields.series] or [True])[fields.series_codes]
        skipped[FILTERED] = int((unwanted if skip is None else unwanted & ~skip).sum())
        skip = unwanted if skip is None else skip | unwanted
    return skip, skipped


def _reasons(fields, starts, empty, bad, rejected):
    """The reason of each rejected row: the first of _REASONS that applies."""
    if not len(rejected):
        return []
    none = np.zeros(len(rejected), bool)
    row_starts = starts[rejected]
    code = np.select(
        [
            fields.days[fields.date_codes[rejected]] == _NO_DAY,
            fields.hours[fields.hour_codes[rejected]] == 0,
            none if fields.interval_codes is None else fields.intervals[fields.interval_codes[rejected]] == 0,
            fields.flags[fields.flag_codes[rejected]] < 0,
            row_starts < _NO_SUCH_HOUR_MS + _SENTINEL_SPAN,
            row_starts < _NOT_REPEATED_MS + _SENTINEL_SPAN,
            none if fields.blank_series is None else fields.blank_series[rejected],
            none if empty is None else empty[rejected],
            bad[rejected],
        ],
        np.arange(1, len(_REASONS)),
        0,
    )
    return [_REASONS[c] for c in code]


_DICTIONARY = pa.dictionary(pa.int32(), pa.string())
_MALFORMED_TEXTS = 100


def _dictionary(column):
    """Row codes (int32 numpy) and the distinct values (Python str) of a
    dictionary-encoded column read in chunks."""
    if column.num_chunks == 0:
        return np.empty(0, dtype=np.int32), []
    encoded = column.unify_dictionaries()
    indices = [chunk.indices.to_numpy(zero_copy_only=False) for chunk in encoded.chunks]
    return np.concatenate(indices), encoded.chunk(0).dictionary.to_pylist()


_NO_DAY = np.iinfo(np.int64).min


def _parse_date(text):
    """Days since 1970-01-01 of MM/DD/YYYY (or YYYY-MM-DD), _NO_DAY if not a date."""
    text = text.strip()
    match = _DATE_US.fullmatch(text)
    try:
        if match:
            month, day, year = (int(g) for g in match.groups())
        else:
            match = _DATE_ISO.fullmatch(text)
            if not match:
                return _NO_DAY
            year, month, day = (int(g) for g in match.groups())
        return timeutil.day_number(dt.date(year, month, day))
    except ValueError:
        return _NO_DAY



def _parse_int(text, highest, pattern):
    """1..highest from ``text`` (the first group of ``pattern``), 0 if it is not one."""
    match = pattern.fullmatch(text.strip())
    value = int(match.group(1)) if match else 0
    return value if 1 <= value <= highest else 0


def _parse_flag(text):
    """0 for N (or empty), 1 for Y, -1 otherwise."""
    return {"": 0, "N": 0, "Y": 1}.get(text.strip().upper(), -1)


@functools.lru_cache(maxsize=8192)
def _hour_starts(day):
    """UTC ms of the start of each hour ending of market day ``day`` (days
    since the epoch), as a (25, 2) array indexed [hour ending, DSTFlag Y].

    Hours ERCOT does not have hold sentinels: the skipped spring-forward hour,
    and DSTFlag Y anywhere but on the repeated fall-back hour.
    """
    starts = np.full((25, 2), _NOT_REPEATED_MS, dtype=np.int64)
    if day == _NO_DAY:
        return starts
    date = timeutil.day_date(day)
    midnight = timeutil.market_day_start(date)
    if timeutil.market_day_start(date + dt.timedelta(days=1)) - midnight == 24 * timeutil.MS_PER_HOUR:
        starts[1:, 0] = midnight + np.arange(24, dtype=np.int64) * timeutil.MS_PER_HOUR
        return starts
    # A DST day: ask zoneinfo about each of its hours.
    for hour_ending in range(1, 25):
        local = dt.datetime.combine(date, dt.time()) + dt.timedelta(hours=hour_ending - 1)
        first = local.replace(tzinfo=timeutil.CENTRAL, fold=0)
        second = local.replace(tzinfo=timeutil.CENTRAL, fold=1)
        if first.astimezone(_UTC).astimezone(timeutil.CENTRAL).replace(tzinfo=None) != local:
            starts[hour_ending, :] = _NO_SUCH_HOUR_MS
            continue
        starts[hour_ending, 0] = timeutil.to_ms(first)
        if second.utcoffset() != first.utcoffset():  # the repeated hour
            starts[hour_ending, 1] = timeutil.to_ms(second)
    return starts


def _prices(strings):
    """(float64 values, empty mask or None when none is empty, not-a-number
    mask) of a price column.

    PERF: clean columns take one cast; only a column that fails it (padding
    spaces, quoted thousands separators, junk) takes the slow path.
    """
    try:
        values = pc.cast(strings, pa.float64()).to_numpy(zero_copy_only=False)
        empty = None  # none: "" does not cast
    except pa.ArrowInvalid:
        trimmed = pc.utf8_trim_whitespace(strings)
        number = pc.match_substring_regex(trimmed, _NUMBER)
        cleaned = pc.replace_substring(trimmed, ",", "")
        values = pc.cast(pc.if_else(number, cleaned, pa.scalar(None, pa.string())), pa.float64())
        values = values.to_numpy(zero_copy_only=False)
        empty = pc.equal(trimmed, "").to_numpy(zero_copy_only=False)
    return values, empty, ~np.isfinite(values) if empty is None else ~np.isfinite(values) & ~empty
