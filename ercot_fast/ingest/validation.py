"""The validation report of an ingest run, and its progress bar.

Per data set: what was read and from which reports, rows rejected and why
(with file and line), rows skipped on purpose, duplicate intervals in the
input, prices outside plausible bounds, values added or corrected per market
day, and, over the market days the run touched, the intervals the store still
lacks (whole intervals, and per series).
"""
import collections
import json
import sys
import time

import numpy as np

from ercot_fast import datasets, timeutil
from ercot_fast.ingest import layout

# Plausible price bounds, for flagging only (nothing is rejected for its size).
# Energy: ERCOT's offer floor (-$251/MWh) to above the highest system-wide
# offer cap with real-time adders (Winter Storm Uri reached $9,315/MWh).
PLAUSIBLE = {
    datasets.DAY_AHEAD: (-251.0, 10_000.0),
    datasets.REAL_TIME_15MIN: (-251.0, 10_000.0),
    datasets.ANCILLARY_SERVICES: (0.0, 10_000.0),
}
EXAMPLES = 20  # examples kept per reason / check


class _Examples:
    """A count and the first few examples."""

    def __init__(self):
        self.count = 0
        self.examples = []

    def add(self, count, examples=()):
        self.count += count
        room = EXAMPLES - len(self.examples)
        if room > 0:
            self.examples.extend(list(examples)[:room])

    def to_json(self):
        return {"count": self.count, "examples": self.examples}


class DatasetReport:
    def __init__(self, name):
        self.name = name
        self.reports = collections.Counter()  # ERCOT report id -> CSV streams
        self.rows_read = 0
        self.rows_accepted = 0
        self.skipped = collections.Counter()
        self.rejected = collections.defaultdict(_Examples)
        self.out_of_bounds = _Examples()
        self.duplicates = _Examples()
        self.conflicting_duplicates = 0
        self.first = self.last = None  # accepted instants of the input
        self.days = set()  # market days the input touched
        self.series = set()
        self.added = self.unchanged = 0
        self.changed = collections.Counter()  # day -> values replaced
        self.files_written = []
        self.files_unchanged = 0
        self.missing = _Examples()
        self.missing_by_day = {}
        self.months = {}  # month -> (missing instants, series gaps) of the merged partition
        self.series_gaps = {}
        self.store_range = None

    def see(self, instants, days, series):
        if len(instants):
            low, high = int(instants.min()), int(instants.max())
            self.first = low if self.first is None else min(self.first, low)
            self.last = high if self.last is None else max(self.last, high)
            first_day = int(days.min())
            self.days.update((np.flatnonzero(np.bincount(days - first_day)) + first_day).tolist())
        self.series.update(series)

    @property
    def rows_rejected(self):
        return sum(r.count for r in self.rejected.values())

    @property
    def values_changed(self):
        return sum(self.changed.values())

    def covered(self):
        """What the input covered, or None when it had no accepted row."""
        if self.first is None:
            return None
        return {
            "first_interval_start": timeutil.format_instant(self.first),
            "last_interval_start": timeutil.format_instant(self.last),
            "first_day": timeutil.day_name(min(self.days)),
            "last_day": timeutil.day_name(max(self.days)),
            "days": len(self.days),
            "series": len(self.series),
        }

    def to_json(self):
        low, high = PLAUSIBLE[self.name]
        return {
            "reports": dict(sorted(self.reports.items())),
            "rows_read": self.rows_read,
            "rows_accepted": self.rows_accepted,
            "rows_skipped": dict(sorted(self.skipped.items())),
            "rows_rejected": {
                "count": self.rows_rejected,
                "by_reason": {reason: r.to_json() for reason, r in sorted(self.rejected.items())},
            },
            "covered": self.covered(),
            "missing_intervals": {**self.missing.to_json(), "by_day": self.missing_by_day},
            "series_gaps": self.series_gaps,
            "duplicate_intervals": {**self.duplicates.to_json(), "conflicting": self.conflicting_duplicates},
            "out_of_bounds": {"bounds": [low, high], **self.out_of_bounds.to_json()},
            "values": {"added": self.added, "changed": self.values_changed, "unchanged": self.unchanged},
            "corrections": [{"day": timeutil.day_name(d), "values_changed": n} for d, n in sorted(self.changed.items())],
            "files_written": self.files_written,
            "files_unchanged": self.files_unchanged,
            "store": self.store_range,
        }

    def summary_lines(self):
        """Its part of the human-readable report (none when the run read
        nothing of it)."""
        if not self.rows_read and not self.reports:
            return []
        reports = ", ".join(f"{r} x{n}" for r, n in sorted(self.reports.items()))
        lines = [f"{self.name} ({reports}):"]
        if self.first is not None:
            lines.append(
                f"  covered {timeutil.day_name(min(self.days))} .. {timeutil.day_name(max(self.days))} "
                f"({len(self.days)} market days, {len(self.series)} series), "
                f"intervals {timeutil.format_instant(self.first)} .. {timeutil.format_instant(self.last)}"
            )
        lines.append(
            f"  rows: {self.rows_read} read, {self.rows_accepted} accepted, "
            f"{self.rows_rejected} rejected, {sum(self.skipped.values())} skipped"
        )
        for reason, count in sorted(self.skipped.items()):
            lines.append(f"    skipped {count}: {reason}")
        for reason, r in sorted(self.rejected.items()):
            where = ", ".join(f"{e['file']}:{e['line']}" for e in r.examples[:3])
            lines.append(f"    rejected {r.count}: {reason} (e.g. {where})")
        lines.append(
            f"  values: {self.added} added, {self.values_changed} changed on {len(self.changed)} re-published days, "
            f"{self.unchanged} unchanged; {len(self.files_written)} files written, {self.files_unchanged} unchanged"
        )
        if self.changed:
            days = sorted(self.changed.items())
            shown = ", ".join(f"{timeutil.day_name(day)} ({n})" for day, n in days[:10])
            lines.append(f"    re-published: {shown}{' ...' if len(days) > 10 else ''}")
        lines.append(
            f"  missing intervals on those days: {self.missing.count}; duplicate intervals in the input: "
            f"{self.duplicates.count} ({self.conflicting_duplicates} with different prices); "
            f"prices outside {PLAUSIBLE[self.name]}: {self.out_of_bounds.count}"
        )
        for series, gap in list(self.series_gaps.items())[:5]:
            lines.append(f"    {series}: {gap['missing']} missing values ({gap['first']} .. {gap['last']})")
        if self.store_range:
            lines.append(
                f"  store: {self.store_range['first_interval_start']} .. {self.store_range['last_interval_start']} "
                f"in {self.store_range['files']} files"
            )
        return lines


class Report:
    """Everything one run saw and did; ``to_json()`` is the --report file."""

    def __init__(self, data_dir, inputs):
        self.data_dir = str(data_dir)
        self.inputs = [str(p) for p in inputs]
        self.started = time.time()
        self.seconds = None
        self.files = 0
        self.bytes = 0
        self.csv_streams = 0
        self.unreadable = []
        self.unrecognised = []
        self.settlement_points_not_found = []
        self.datasets = {name: DatasetReport(name) for name in datasets.INGESTED_DATASETS}

    def add_unreadable(self, name, error):
        self.unreadable.append({"file": name, "error": str(error)})

    def add_unrecognised(self, name, why):
        self.unrecognised.append({"file": name, "reason": why})

    def check_month(self, name, month, times, columns):
        """Missing intervals of a partition as merged, over the market days of
        its month the run has touched so far (a later merge of the same month
        replaces this: the figures are those of the partition as it ends up)."""
        dataset = self.datasets[name]
        days = np.fromiter(dataset.days, dtype=np.int64, count=len(dataset.days))
        days = np.sort(days[layout.months_of_days(days) == month])
        if len(days):
            dataset.months[month] = _missing_in(days, times, columns, dataset.series, datasets.INTERVAL_MS[name])

    def finish(self, data_dir):
        """Sum the months' missing intervals; read the stored range."""
        for name, dataset in self.datasets.items():
            files = layout.partitions(data_dir, name)
            if files:
                first, last = (layout.read_times(data_dir, f) for f in (files[0], files[-1]))
                if len(first) and len(last):
                    dataset.store_range = {
                        "first_interval_start": timeutil.format_instant(first[0]),
                        "last_interval_start": timeutil.format_instant(last[-1]),
                        "files": len(files),
                    }
            gaps = {}
            for month in sorted(dataset.months):
                missing, month_gaps = dataset.months[month]
                if len(missing):
                    dataset.missing.add(len(missing), [timeutil.format_instant(m) for m in missing[:EXAMPLES]])
                    wallclock_days = timeutil.central_wallclock(missing) // timeutil.MS_PER_DAY
                    for day, count in zip(*np.unique(wallclock_days, return_counts=True)):
                        if len(dataset.missing_by_day) < 100:
                            dataset.missing_by_day[timeutil.day_name(day)] = int(count)
                for series, (n, first_gap, last_gap) in month_gaps.items():
                    total, low, high = gaps.get(series, (0, first_gap, last_gap))
                    gaps[series] = (total + n, min(low, first_gap), max(high, last_gap))
            dataset.series_gaps = {
                series: {"missing": n, "first": timeutil.format_instant(a), "last": timeutil.format_instant(b)}
                for series, (n, a, b) in sorted(gaps.items(), key=lambda item: (-item[1][0], item[0]))[:50]
            }

    def to_json(self):
        return {
            "data_dir": self.data_dir,
            "inputs": self.inputs,
            "started": timeutil.format_instant(int(self.started) * 1000),
            "seconds": self.seconds,
            "files": self.files,
            "csv_streams": self.csv_streams,
            "bytes": self.bytes,
            "unreadable_files": self.unreadable,
            "unrecognised_files": self.unrecognised,
            "settlement_points_not_found": self.settlement_points_not_found,
            "datasets": {name: d.to_json() for name, d in self.datasets.items()},
        }

    def dumps(self):
        return json.dumps(self.to_json(), indent=1) + "\n"

    def summary(self):
        """The human-readable report printed at the end of a run."""
        lines = [
            f"ingested {self.files} files ({self.csv_streams} CSV streams, {self.bytes / 1e6:.1f} MB) "
            f"into {self.data_dir} in {self.seconds:.1f} s"
        ]
        for dataset in self.datasets.values():
            lines.extend(dataset.summary_lines())
        for item in self.unrecognised:
            lines.append(f"skipped {item['file']}: {item['reason']}")
        for item in self.unreadable:
            lines.append(f"UNREADABLE {item['file']}: {item['error']}")
        if self.settlement_points_not_found:
            lines.append(f"--settlement-points not in the input: {', '.join(self.settlement_points_not_found)}")
        return "\n".join(lines) + "\n"


def _missing_in(days, times, columns, series, interval_ms):
    """The intervals of ``days`` a partition lacks: (instants no series has a
    price for, {series: (values missing, first, last)}) over the series of the
    partition and those of the input."""
    expected = np.concatenate(
        [
            np.arange(
                timeutil.market_day_start(timeutil.day_date(d)),
                timeutil.market_day_start(timeutil.day_date(d + 1)),
                interval_ms,
                dtype=np.int64,
            )
            for d in days
        ]
    )
    where = np.searchsorted(times, expected)
    inside = where < len(times)
    found = np.zeros(len(expected), dtype=bool)
    found[inside] = times[where[inside]] == expected[inside]
    any_value = np.zeros(len(expected), dtype=bool)
    gaps = {}
    for name in sorted(set(columns) | set(series)):
        present = np.zeros(len(expected), dtype=bool)
        if name in columns:
            present[found] = ~np.isnan(columns[name][where[found]])
        any_value |= present
        absent = expected[~present]
        if len(absent):
            gaps[name] = (len(absent), int(absent[0]), int(absent[-1]))
    return expected[~any_value], gaps


class Progress:
    """A one-line progress bar on stderr, when stderr is a terminal."""

    def __init__(self, total_bytes, enabled=None, stream=None):
        self.stream = stream or sys.stderr
        self.enabled = self.stream.isatty() if enabled is None else enabled
        self.total = max(total_bytes, 1)
        self.done = 0
        self.files = 0
        self.rows = 0
        self.started = time.monotonic()
        self.shown = 0.0

    def update(self, bytes_done=0, files=0, rows=0):
        self.done += bytes_done
        self.files += files
        self.rows += rows
        now = time.monotonic()
        if self.enabled and (now - self.shown >= 0.2 or self.done >= self.total):
            self.shown = now
            share = min(self.done / self.total, 1.0)
            bar = "#" * int(share * 30)
            rate = self.rows / max(now - self.started, 1e-9)
            self.stream.write(
                f"\ringest [{bar:<30}] {share:4.0%} {self.files} files {self.rows:,} rows {rate:,.0f} rows/s "
            )
            self.stream.flush()

    def close(self):
        if self.enabled:
            self.update()
            self.stream.write("\n")
            self.stream.flush()
