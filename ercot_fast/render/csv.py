"""A query's answer as CSV, for spreadsheets and ``pandas.read_csv``: a
header row, instants in RFC 3339 (``Z`` in UTC, the real offset in Central
time), empty fields for missing prices, numbers in their shortest round-trip
form (Arrow's CSV writer). Two layouts:

- ``wide`` (the default): ``datetime``, then one column per series;
- ``long``: ``datetime,hub,price``, rows by series in the order asked, then
  by time (the Flight long layout).
"""
import csv
import io
import re

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pa_csv

from ercot_fast.query.parse import UTC
from ercot_fast.render.arrow import LONG

# instants and numbers never need quotes; names only with a comma, quote or line break
_PLAIN = pa_csv.WriteOptions(include_header=False, quoting_style="none")
_QUOTED = pa_csv.WriteOptions(include_header=False, quoting_style="needed")
_SPECIAL = re.compile(r'[,"\r\n]')
_FORMATS = {UTC: "%Y-%m-%dT%H:%M:%SZ"}
_WITH_OFFSET = "%Y-%m-%dT%H:%M:%S%Ez"


def render_csv(result, tz, layout):
    """CSV bytes of a PriceResult, instants printed in ``tz``."""
    stamps = _instants(result.timestamps, tz)
    if layout == LONG:
        header = ["datetime", "hub", "price"]
        arrays = [
            pa.concat_arrays([stamps] * len(result.names)) if result.names else stamps[:0],
            pa.array(np.repeat(np.array(result.names, dtype=object), len(stamps)), pa.utf8()),
            pa.concat_arrays(result.columns) if result.columns else pa.array([], pa.float64()),
        ]
    else:
        header = ["datetime", *result.names]
        arrays = [stamps, *result.columns]
    text = io.StringIO()
    csv.writer(text, lineterminator="\n").writerow(header)  # quoted only where a name needs it
    sink = io.BytesIO(text.getvalue().encode())
    sink.seek(0, io.SEEK_END)
    table = pa.Table.from_arrays(arrays, names=[str(i) for i in range(len(arrays))])
    if table.num_rows:
        quoted = layout == LONG and any(_SPECIAL.search(name) for name in result.names)
        pa_csv.write_csv(table, sink, _QUOTED if quoted else _PLAIN)
    return sink.getvalue()


def _instants(timestamps, tz):
    """RFC 3339 text of UTC ms instants, in ``tz``."""
    seconds = pa.array(np.asarray(timestamps, dtype=np.int64) // 1000, pa.timestamp("s", tz=tz))
    return pc.strftime(seconds, format=_FORMATS.get(tz, _WITH_OFFSET))
