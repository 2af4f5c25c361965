"""The formats of an HTTP price answer: what ``format=`` (or ``Accept``) can
ask for, with their media types and file extensions, and the one function
that renders a query in each of them.

- ``json``: the /api/prices document (``render.json``);
- ``csv``: ``render.csv``, wide by default;
- ``arrow``: an Arrow IPC stream, ``parquet``: a Parquet file, both in the
  Flight schemas (``render.arrow``), long by default.
"""
import io
from typing import NamedTuple

import pyarrow as pa
import pyarrow.parquet as pq

from ercot_fast.query.run import run_query
from ercot_fast.render import arrow
from ercot_fast.render import json as json_render
from ercot_fast.render.csv import render_csv


class Format(NamedTuple):
    media_type: str
    extension: str
    default_layout: str  # None: the format has one shape (JSON)


JSON = "json"
CSV = "csv"
ARROW = "arrow"
PARQUET = "parquet"
FORMATS = {
    JSON: Format("application/json", "json", None),
    CSV: Format("text/csv; charset=utf-8", "csv", arrow.WIDE),
    ARROW: Format("application/vnd.apache.arrow.stream", "arrows", arrow.LONG),
    PARQUET: Format("application/vnd.apache.parquet", "parquet", arrow.LONG),
}
#: media type (without parameters) -> format, for Accept negotiation; JSON first: the default
MEDIA_TYPES = {f.media_type.split(";")[0]: name for name, f in FORMATS.items()}


def render(store, query, format, layout):
    """The body of ``query`` in ``format`` (and ``layout`` where it has one)."""
    if format == JSON:
        return json_render.render_json(store, query)
    result = run_query(store, query)
    if format == CSV:
        return render_csv(result, query.tz, layout)
    selection = arrow.Selection(result, layout, query.tz)
    schema = arrow.result_schema(selection, store.synthetic)
    table = pa.concat_tables([schema.empty_table(), *(part for part, _ in arrow.result_parts(selection, schema))])
    sink = io.BytesIO()
    if format == ARROW:
        with pa.ipc.new_stream(sink, schema) as writer:
            writer.write_table(table)
    else:
        pq.write_table(table, sink)
    return sink.getvalue()
