"""Ingest ERCOT's own report files into the data directory the service serves.

``ingest(paths, data_dir)`` reads CSV files, ZIP archives of them and folders
of both, in the formats of docs/DATA.md section 2 (recognised from the header,
never from the file name): NP4-190-CD day-ahead and NP6-905-CD real-time
settlement point prices, NP4-188-CD day-ahead ancillary service clearing
prices, and the yearly NP4-180-ER / NP6-785-ER extracts with spaced headers.
It writes the canonical layout of ``ercot_fast.ingest.layout`` (monthly
Parquet files, UTC instants, atomic writes) and returns a validation Report.

Guarantees:
- time is DST-correct (``ercot_fast.ingest.formats``): 23- and 25-hour days,
  both prices of the repeated fall-back hour as two instants;
- incremental and idempotent: a value equal to the stored one changes nothing
  and a file nothing changed in is not rewritten; new days are added; a
  re-published day replaces the stored values, logged per data set and day.
  A later run always wins over the store. An empty price never erases one;
- inputs of one run that disagree about a value are resolved by precedence,
  not by the order they were given in: the file modified last wins, then the
  later path in sort order, then (within a file) the later row; ZIP members
  rank by their own time stamp and name inside their archive;
- malformed rows are counted and reported with file and line, never fatal; a
  file that cannot be read at all is reported and skipped;
- one ingest at a time per data directory (a lock); memory stays bounded by
  merging into the store every FLUSH_ROWS rows.
"""
import logging
import time

import numpy as np
import pyarrow as pa

from ercot_fast import datasets, timeutil
from ercot_fast.ingest import formats, layout, sources, validation
from ercot_fast.errors import IngestError
from ercot_fast.datadir import open_data_dir

__all__ = ["ingest", "IngestError", "FLUSH_ROWS"]

log = logging.getLogger(__name__)

FLUSH_ROWS = 8_000_000  # accepted rows held in memory before they are merged into the store


def ingest(paths, data_dir, settlement_points=None, progress=False, flush_rows=FLUSH_ROWS):
    """Ingest every ERCOT report under ``paths`` into ``data_dir`` (a folder,
    an ``s3://`` URI or a ``datadir.DataDir``).

    ``settlement_points``: names to keep from the day-ahead and real-time
    reports (None: all). ``progress``: True/False, or None to show a bar when
    stderr is a terminal. Returns the validation Report (``summary()`` for
    people, ``to_json()`` for machines). Raises IngestError when an input does
    not exist or another ingest holds the data directory.
    """
    data_dir = open_data_dir(data_dir)
    if not data_dir.local:
        data_dir.check()  # a local folder is created, a bucket must exist
    with layout.locked(data_dir):
        inputs = sources.expand(paths, skip=data_dir.path(datasets.INGEST_DIR) if data_dir.local else None)
        report = validation.Report(data_dir, paths)
        bar = validation.Progress(sum(i.size for i in inputs), enabled=progress)
        run = _Run(data_dir, report, settlement_points, flush_rows, bar)
        log.info("ingest: %d files from %s into %s", len(inputs), ", ".join(map(str, paths)), data_dir)
        for item in inputs:
            run.read(item)
            report.files += 1
            report.bytes += item.size
            bar.update(bytes_done=item.size, files=1)
            if run.held_rows >= flush_rows:
                run.flush()
        run.flush()
        bar.close()
        report.finish(data_dir)
        if settlement_points:
            seen = report.datasets[datasets.DAY_AHEAD].series | report.datasets[datasets.REAL_TIME_15MIN].series
            report.settlement_points_not_found = sorted(set(settlement_points) - seen)
            if report.settlement_points_not_found:
                log.warning("--settlement-points not in the input: %s", ", ".join(report.settlement_points_not_found))
    report.seconds = round(time.time() - report.started, 3)
    return report


class _Run:
    """One ingest run. Data flows one way: the reader cuts each input into
    CSV chunks, the batcher gathers them into batches, the run parses each
    batch it is handed, holds the accepted rows, and merges them into the
    store when it holds enough (``flush``)."""

    def __init__(self, data_dir, report, settlement_points, flush_rows, progress=None):
        self.data_dir = data_dir
        self.report = report
        self.settlement_points = frozenset(settlement_points) if settlement_points else None
        self.flush_rows = flush_rows
        self.reader = sources.Reader(report)
        self.batcher = sources.Batcher()
        self.progress = progress
        self.series = {name: {} for name in datasets.INGESTED_DATASETS}  # data set -> series name -> code
        self.held = {name: [] for name in datasets.INGESTED_DATASETS}
        self.held_rows = 0

    def read(self, item):
        """Read one input, parsing each batch as it fills up (and merging
        early, between batches, when one huge file holds too many rows)."""
        for fmt, chunk in self.reader.read(item):
            for batch in self.batcher.add(fmt, chunk):
                self._parse(batch)
                if self.held_rows >= 2 * self.flush_rows:  # one huge file: do not wait for its end
                    self.flush()

    def parse_pending(self):
        """Parse every batch not yet full."""
        for batch in self.batcher.drain():
            self._parse(batch)

    def flush(self):
        """Merge every held row into the store, after parsing every pending
        batch: rows always reach the store in precedence order (those of a
        later flush win over those of an earlier one)."""
        self.parse_pending()
        for name in datasets.INGESTED_DATASETS:
            if self.held[name]:
                self._merge(name, [np.concatenate(parts) for parts in zip(*self.held[name])])
                self.held[name] = []
        self.held_rows = 0

    def _parse(self, batch):
        """Parse one batch and hold its accepted rows."""
        data = batch.data()
        try:
            parsed = formats.parse(batch.fmt, data, self.settlement_points)
        except (pa.ArrowInvalid, UnicodeDecodeError) as exc:
            if len(batch.chunks) > 1:  # find the chunk that cannot be read
                for chunk in batch.chunks:
                    self._parse(sources.Batch(batch.fmt, [chunk], len(chunk.body)))
                return
            self.report.add_unreadable(batch.chunks[0].where(), f"not readable as CSV text: {exc}")
            return
        self._account(batch, data, parsed)
        if self.progress:
            self.progress.update(rows=parsed.rows + len(parsed.malformed))

    def _account(self, batch, data, parsed):
        """Count a parsed batch in the report and hold its accepted rows."""
        dataset = self.report.datasets[batch.fmt.dataset]
        lines = _Lines(data, parsed, batch.chunks)
        dataset.rows_read += parsed.rows + len(parsed.malformed)
        dataset.rows_accepted += len(parsed.accepted)
        dataset.skipped.update(parsed.skipped)
        _report_rejected(dataset, parsed, lines)
        _report_out_of_bounds(dataset, parsed, lines)
        self._hold(dataset, parsed, lines)

    def _hold(self, dataset, parsed, lines):
        """Hold the accepted rows until the next flush, their series coded
        run-wide, each with its precedence rank."""
        registry = self.series[dataset.name]
        to_global = [registry.setdefault(name, len(registry)) for name in parsed.series]
        to_global = np.array(to_global or [0], dtype=np.int32)
        codes = to_global[parsed.series_codes]
        present = np.flatnonzero(np.bincount(parsed.series_codes, minlength=len(parsed.series)))
        dataset.see(parsed.instants, parsed.days, {parsed.series[c] for c in present})
        ranks = lines.ranks(parsed.accepted)
        self.held[dataset.name].append((parsed.instants, parsed.days, codes, parsed.prices, ranks))
        self.held_rows += len(parsed.accepted)

    def _merge(self, name, arrays):
        """Merge the held rows of one data set into its monthly partitions:
        of the rows of one (series, instant), the last in precedence order wins."""
        dataset = self.report.datasets[name]
        series = list(self.series[name])
        instants, days, codes, prices, ranks = arrays
        order = _precedence_order(instants, codes, ranks)
        instants, days, codes, prices, ranks = (a[order] for a in arrays)
        last = np.ones(len(order), dtype=bool)
        last[:-1] = (codes[1:] != codes[:-1]) | (instants[1:] != instants[:-1])
        if not last.all():
            self._report_duplicates(dataset, series, last, instants, codes, prices, ranks)
            instants, days, codes, prices = (a[last] for a in (instants, days, codes, prices))
        self._write_months(dataset, series, instants, days, codes, prices)

    def _report_duplicates(self, dataset, series, last, instants, codes, prices, ranks):
        """Count the rows of one (series, instant) that lose to a later one
        (``last`` marks the winners), with examples: those of another price
        first."""
        last_rows = np.flatnonzero(last)  # each group of equal keys ends with its kept row
        kept_at = last_rows[np.searchsorted(last_rows, np.arange(len(last)))]
        conflicting = np.flatnonzero(~last & (prices != prices[kept_at]))
        dataset.duplicates.add(
            int((~last).sum()),
            [
                {
                    "series": series[codes[i]],
                    "interval_start": timeutil.format_instant(instants[i]),
                    "prices": [float(prices[i]), float(prices[kept_at[i]])],
                    "files": [self.reader.sources[ranks[i]], self.reader.sources[ranks[kept_at[i]]]],
                    "kept": float(prices[kept_at[i]]),
                }
                for i in (conflicting if len(conflicting) else np.flatnonzero(~last))[: validation.EXAMPLES]
            ],
        )
        dataset.conflicting_duplicates += len(conflicting)

    def _write_months(self, dataset, series, instants, days, codes, prices):
        """Upsert unique (series, instant) rows into their monthly partitions."""
        name = dataset.name
        months = layout.months_of_days(days)
        by_month = np.argsort(months, kind="stable")
        bounds = np.flatnonzero(np.diff(months[by_month])) + 1
        for rows in np.split(by_month, bounds) if len(by_month) else ():
            partition = layout.partition_name(name, months[rows[0]])
            added, unchanged, changed, written, merged = layout.merge_partition(
                self.data_dir, partition, name, instants[rows], days[rows], series, codes[rows], prices[rows]
            )
            self.report.check_month(name, months[rows[0]], *merged)
            dataset.added += added
            dataset.unchanged += unchanged
            for day, count in sorted(changed.items()):
                log.info("%s %s: %d values replaced by re-published prices", name, timeutil.day_name(day), count)
                dataset.changed[day] += count
            if written:
                where = f"{self.data_dir}/{partition}"
                log.info("%s: wrote %s (%d values added, %d changed)", name, where, added, sum(changed.values()))
                dataset.files_written.append(where)
            else:
                dataset.files_unchanged += 1


def _report_rejected(dataset, parsed, lines):
    """Count a batch's malformed and rejected rows by reason, with examples."""
    if parsed.malformed:
        where = lines.malformed(validation.EXAMPLES)
        dataset.rejected[formats.MALFORMED].add(
            len(parsed.malformed), [{**w, "text": text[:200]} for w, (_, text) in zip(where, parsed.malformed)]
        )
    if len(parsed.rejected):
        reasons = np.array(parsed.rejected_reasons, dtype=object)
        for reason in sorted(set(parsed.rejected_reasons)):
            rows = parsed.rejected[reasons == reason]
            dataset.rejected[reason].add(len(rows), lines.rows(rows[: validation.EXAMPLES], text=True))


def _report_out_of_bounds(dataset, parsed, lines):
    """Count the accepted prices outside the plausible bounds, with examples."""
    low, high = validation.PLAUSIBLE[dataset.name]
    outside = np.flatnonzero((parsed.prices < low) | (parsed.prices > high))
    if len(outside):
        examples = lines.rows(parsed.accepted[outside[: validation.EXAMPLES]])
        for example, i in zip(examples, outside):
            example.update(
                series=parsed.series[parsed.series_codes[i]],
                interval_start=timeutil.format_instant(parsed.instants[i]),
                price=float(parsed.prices[i]),
            )
        dataset.out_of_bounds.add(len(outside), examples)


def _precedence_order(instants, codes, ranks):
    """The order that sorts rows by series, instant, then precedence; stable
    sorts keep file order among equals, so the last row of each (series,
    instant) is the one that wins."""
    # PERF: rows arrive almost in precedence order (a stable sort of nearly
    # sorted data is a linear pass), then one stable sort of an int64 key.
    order = np.argsort(ranks, kind="stable")
    base = int(instants.min()) if len(instants) else 0
    steps = (instants[order] - base) // 60_000  # intervals start on whole minutes
    if len(steps) and int(steps.max()) < 1 << 32:
        return order[np.argsort((codes[order].astype(np.int64) << 32) | steps, kind="stable")]
    return np.lexsort((ranks, instants, codes))


class _Lines:
    """Tells the source, line and precedence rank of a parsed row.

    pyarrow drops blank lines and malformed rows from the table; when a batch
    has any, the physical lines are worked out from the bytes (every row is
    one line: ERCOT values hold no newlines).
    """

    def __init__(self, data, parsed, chunks):
        self.data = data
        self.parsed = parsed
        self.chunks = chunks
        self.starts = np.cumsum([0] + [c.lines for c in chunks])[:-1]  # physical line of each chunk's first row
        self.lines = sum(c.lines for c in chunks)
        self.first_lines = np.array([c.first_line for c in chunks], dtype=np.int64)
        self.chunk_ranks = np.array([c.rank for c in chunks], dtype=np.int64)
        self._index = None

    def _line_index(self):
        """(line starts, line ends, physical line of each table row, of each malformed row)."""
        if self._index is None:
            buf = np.frombuffer(self.data, dtype=np.uint8)
            ends = np.flatnonzero(buf == 10)
            begins = np.concatenate(([0], ends[:-1] + 1))
            length = ends - begins
            carriage = np.zeros(len(ends), dtype=bool)
            carriage[length > 0] = buf[ends[length > 0] - 1] == 13
            nonempty = np.flatnonzero(length - carriage > 0)
            # pyarrow numbers rows from 1 over the lines that are not blank
            numbers = np.array([n for n, _ in self.parsed.malformed], dtype=np.int64)
            malformed = nonempty[numbers - 1] if len(numbers) else np.empty(0, dtype=np.int64)
            rows = np.setdiff1d(nonempty, malformed)
            if len(rows) != self.parsed.rows:  # not one row per line: fall back to counting
                rows = np.arange(self.parsed.rows)
            self._index = begins, ends, rows, malformed
        return self._index

    def _physical(self, rows):
        # every line a row (no blank line, nothing malformed): row r is line r
        simple = self.parsed.rows == self.lines
        return rows if simple else self._line_index()[2][rows]

    def _where(self, physical):
        chunk = np.searchsorted(self.starts, physical, side="right") - 1
        return chunk, self.first_lines[chunk] + physical - self.starts[chunk]

    def ranks(self, rows):
        if len(self.chunks) == 1:
            return np.full(len(rows), self.chunks[0].rank, dtype=np.int64)
        chunk, _ = self._where(self._physical(rows))
        return self.chunk_ranks[chunk]

    def rows(self, rows, text=False):
        physical = self._physical(np.asarray(rows, dtype=np.int64))
        return self._describe(physical, text)

    def malformed(self, limit):
        return self._describe(self._line_index()[3][:limit], text=False)

    def _describe(self, physical, text):
        chunk, line = self._where(physical)
        found = []
        for c, n, at in zip(chunk.tolist(), line.tolist(), physical.tolist()):
            item = {"file": self.chunks[c].source, "line": n}
            if text:
                begins, ends, _, _ = self._line_index()
                item["text"] = self.data[begins[at] : ends[at]].decode("utf-8", "replace").rstrip("\r")[:200]
            found.append(item)
        return found
