"""``ercot-fast fetch``: ERCOT's published reports into the served store.

One run lists each report's documents (the MIS's recent window; with
credentials and ``--since``, the Public API's archive too), downloads those
the manifest does not hold, checks them (every byte arrived, a ZIP, readable),
ingests them through the ingest (atomic, idempotent, DST-correct) in order of
publication, so a re-published (``_retry``) document's prices replace the
earlier ones, and records them in the manifest. A document that fails to
download, or whose answer is no ZIP at all (an error page), is tried again by
the next run; a ZIP that is corrupt is reported, recorded and skipped. ``watch`` repeats runs on an interval.

ERCOT's publish times are used to order documents and are recorded, never
for delivery times (their UTC offset is wrong during DST): those come from
the CSVs, as the ingest reads them.
"""
import dataclasses
import datetime
import logging
import os
import time
import zipfile
import zlib
from pathlib import Path

from ercot_fast import config, timeutil
from ercot_fast.errors import FetchError, IngestError
from ercot_fast.fetch import archive, manifest, mis
from ercot_fast.fetch import http as fetch_http
from ercot_fast.ingest import ingest

__all__ = ["run", "watch", "Summary", "FetchError"]

log = logging.getLogger(__name__)

BATCH_DOCUMENTS = 1000  # downloaded, then ingested and recorded together (the archive's most per request)
UTC = datetime.timezone.utc
_ZIP_MAGIC = (b"PK\x03\x04", b"PK\x05\x06")
_ZIP_ERRORS = (zipfile.BadZipFile, zipfile.LargeZipFile, zlib.error, EOFError, OSError, NotImplementedError, RuntimeError)


@dataclasses.dataclass
class Summary:
    """What one run did."""

    listed: dict = dataclasses.field(default_factory=dict)  # report -> documents listed
    new: int = 0  # listed, not in the manifest
    fetched: int = 0  # downloaded whole, readable, ingested
    bytes: int = 0
    corrupt: list = dataclasses.field(default_factory=list)  # "name: why", skipped (recorded)
    failed: list = dataclasses.field(default_factory=list)  # "what: why", tried again next run
    added: int = 0  # values the ingest added
    changed: int = 0  # values replaced by re-published prices
    corrections: list = dataclasses.field(default_factory=list)  # "data set day (values)"
    files_written: int = 0
    stopped: bool = False  # a stop signal ended the run early
    seconds: float = 0.0

    @property
    def ok(self):
        return not self.failed

    def text(self):
        listed = ", ".join(f"{report} {count}" for report, count in self.listed.items()) or "nothing"
        lines = [
            f"fetch: listed {listed}; {self.new} new, {self.fetched} fetched ({self.bytes:,} bytes), "
            f"{len(self.corrupt)} corrupt, {len(self.failed)} failed; values {self.added} added, "
            f"{self.changed} changed; {self.files_written} files written; {self.seconds:.1f} s"
            + (" (stopped early)" if self.stopped else "")
        ]
        if self.corrections:
            lines.append(f"  re-published: {', '.join(self.corrections)}")
        lines += [f"  CORRUPT, skipped: {item}" for item in self.corrupt]
        lines += [f"  FAILED, the next run tries again: {item}" for item in self.failed]
        return "\n".join(lines) + "\n"

    def add_ingest(self, report):
        """Count what an ingest (its validation Report) did."""
        for name, dataset in report.datasets.items():
            self.added += dataset.added
            self.changed += dataset.values_changed
            self.files_written += len(dataset.files_written)
            self.corrections += [f"{name} {timeutil.day_name(day)} ({n})" for day, n in sorted(dataset.changed.items())]


def run(data_dir, settings, environ=os.environ, should_stop=lambda: False,
        backoff=fetch_http.BACKOFF_SECONDS, requests_per_minute=archive.REQUESTS_PER_MINUTE):
    """One fetch into ``data_dir`` (a config.FetchConfig's ``settings``): a
    Summary. ``should_stop()`` is asked between documents. Raises FetchError
    when it cannot start (another fetch runs, some credentials missing)."""
    started = time.monotonic()
    credentials = archive.Credentials.from_environ(environ)
    Path(data_dir).mkdir(parents=True, exist_ok=True)
    with manifest.locked(data_dir):
        state = manifest.Manifest.load(data_dir)
        with fetch_http.session(backoff) as http:
            fetcher = _Run(data_dir, settings, state, http, should_stop)
            if credentials and settings.since:
                fetcher.archive = archive.Archive(http, settings.api_url, settings.token_url, credentials,
                                                  requests_per_minute)
            elif settings.since:
                log.info("no Public API credentials (%s, %s, %s): fetching only what the MIS lists, published since %s",
                         archive.ENV_KEY, archive.ENV_USERNAME, archive.ENV_PASSWORD, settings.since)
            fetcher.run()
    summary = fetcher.summary
    summary.seconds = round(time.monotonic() - started, 3)
    (log.info if summary.ok else log.warning)("%s", summary.text().rstrip())
    return summary


class _Run:
    """One run's listings, batches and counts."""

    def __init__(self, data_dir, settings, state, http, should_stop):
        self.data_dir = data_dir
        self.settings = settings
        self.state = state
        self.http = http
        self.should_stop = should_stop
        self.archive = None
        self.summary = Summary()
        self.failed_reports = set()  # reports with a document that failed to download this run
        self.since = None
        if settings.since:
            self.since = datetime.datetime.combine(datetime.date.fromisoformat(settings.since), datetime.time(),
                                                   tzinfo=timeutil.CENTRAL)

    def run(self):
        new, archive_listed, listed_keys = [], {}, set()
        for report in self.settings.reports:
            found = {}
            if self.archive is not None:
                end = datetime.datetime.now(UTC)
                try:
                    found.update((d.doc_id, d) for d in self.archive.listing(report, self._archive_start(report), end))
                    archive_listed[report] = {"since": self.settings.since, "to": end.isoformat(timespec="seconds")}
                except FetchError as exc:
                    self.summary.failed.append(f"{exc.message}; {exc.details}")
            try:
                for document in mis.listing(self.http, self.settings.mis_url, report):
                    if self.since is None or document.published >= self.since:
                        found.setdefault(document.doc_id, document)
            except FetchError as exc:
                self.summary.failed.append(f"{exc.message}; {exc.details}")
            self.summary.listed[report] = len(found)
            listed_keys.update(d.key for d in found.values())
            new += [d for d in found.values() if not self.state.holds(d)]
        self.summary.new = len(new)
        # the ingest orders its inputs by modification time: the later publication wins
        new.sort(key=lambda d: (d.published.astimezone(UTC), d.doc_id.zfill(20)))
        for first in range(0, len(new), BATCH_DOCUMENTS):
            if not self._batch(new[first:first + BATCH_DOCUMENTS]):
                self.summary.stopped = True
                return
        # the archive's listing moves on for a report only once every document it listed is recorded
        self.state.archive_listed.update((r, span) for r, span in archive_listed.items() if r not in self.failed_reports)
        self.state.forget(keep=listed_keys, older_than=datetime.datetime.now(UTC) - manifest.KEEP)
        self.state.save()

    def _archive_start(self, report):
        """From --since (not before the archive's first day), or, when an
        earlier run listed from that day or before, from a day before where
        its listing ended."""
        start = max(self.since, datetime.datetime.combine(archive.FIRST_DAY, datetime.time(), tzinfo=timeutil.CENTRAL))
        listed = self.state.archive_listed.get(report)
        if listed and listed["since"] <= self.settings.since:
            start = max(start, datetime.datetime.fromisoformat(listed["to"]) - datetime.timedelta(days=1))
        return start

    def _batch(self, documents):
        """Download, check, ingest and record ``documents``; False when a stop
        signal came first (nothing of the batch recorded)."""
        folder = manifest.incoming(self.data_dir)
        downloaded = {}  # doc_id -> (size, sha256)
        for document in (d for d in documents if d.source == "mis"):
            if self.should_stop():
                return False
            try:
                downloaded[document.doc_id] = mis.download(self.http, self.settings.mis_url, document,
                                                           folder / document.file_name)
            except FetchError as exc:
                self.summary.failed.append(f"{exc.message}; {exc.details}")
                self.failed_reports.add(document.report)
        for report in self.settings.reports:
            wanted = [d for d in documents if d.source == "api" and d.report == report]
            if wanted and self.should_stop():
                return False
            if wanted:
                try:
                    downloaded.update(self.archive.download(report, wanted, folder))
                except FetchError as exc:
                    self.summary.failed.append(f"{exc.message}; {exc.details}")
                    self.failed_reports.add(report)
                    continue
                missing = [d for d in wanted if d.doc_id not in downloaded]
                self.summary.failed += [f"{d.name} (doc {d.doc_id}): not in the Public API's download; the next run "
                                        "tries again" for d in missing]
                if missing:
                    self.failed_reports.add(report)
        ready = []
        for document in documents:
            if document.doc_id not in downloaded:
                continue
            path = folder / document.file_name
            size, sha256 = downloaded[document.doc_id]
            with open(path, "rb") as file:
                head = file.read(16)
            if head[:4] not in _ZIP_MAGIC:  # an error page in place of the document: ask again next run
                self.summary.failed.append(f"{document.name} (doc {document.doc_id}): the answer is not a ZIP "
                                           f"({size} bytes beginning {head!r}); the next run tries again")
                self.failed_reports.add(document.report)
                path.unlink()
                continue
            why = _unreadable(path)
            if why:
                self.summary.corrupt.append(f"{document.name} (doc {document.doc_id}): {why}")
                self.state.record(document, size, sha256, manifest.CORRUPT, why)
                path.unlink()
                continue
            published = int(document.published.timestamp() * 1e9)
            os.utime(path, ns=(published, published))
            ready.append((document, path, size, sha256))
        if ready:
            try:
                # NOTE: the folder, not the files: the ingest's log line names its inputs
                report = ingest([folder], self.data_dir, settlement_points=self.settings.settlement_points,
                                progress=False)
            except (IngestError, OSError) as exc:
                # another ingest holds the data directory, or a full disk (every file of the store
                # is still its old or new self): the next run fetches these documents again
                why = str(exc) if isinstance(exc, IngestError) else \
                    f"cannot write {exc.filename or self.data_dir} ({exc.strerror or exc})"
                self.summary.failed.append(f"ingest: {why}")
                self.failed_reports.update(document.report for document, _, _, _ in ready)
                self.state.save()
                return True
            self.summary.add_ingest(report)
            for document, _, size, sha256 in ready:
                self.state.record(document, size, sha256, manifest.INGESTED)
                self.summary.fetched += 1
                self.summary.bytes += size
        self.state.save()
        for _, path, _, _ in ready:
            path.unlink()
        return True


def _unreadable(path):
    """Why a downloaded document is not a readable ZIP, or None."""
    try:
        with zipfile.ZipFile(path) as archive_file:
            bad = archive_file.testzip()
            if bad is not None:
                return f"a corrupt ZIP (member {bad} fails its CRC check)"
            if not archive_file.namelist():
                return "an empty ZIP"
    except _ZIP_ERRORS as exc:
        return f"a corrupt ZIP ({type(exc).__name__}: {exc})"
    return None


def watch(data_dir, settings, on_run, wait, should_stop, environ=os.environ, **kwargs):
    """Fetch every ``settings.interval`` seconds until ``wait(seconds)``
    returns True (a stop); ``on_run(summary)`` after each run. A run that
    cannot start (another fetch holds the data directory) is logged and
    tried again next time."""
    if settings.interval < config.DEFAULT_FETCH_INTERVAL and settings.mis_url == config.DEFAULT_MIS_URL:
        log.warning("fetching every %g s: ERCOT asks clients to poll a report no more than once per %g s",
                    settings.interval, config.DEFAULT_FETCH_INTERVAL)
    while True:
        try:
            on_run(run(data_dir, settings, environ, should_stop, **kwargs))
        except FetchError as exc:
            log.error("fetch did not run: %s; %s", exc.message, exc.details)
        if should_stop() or wait(settings.interval):
            return
