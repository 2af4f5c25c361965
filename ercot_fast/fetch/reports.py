"""The ERCOT reports the fetcher knows (their names, MIS report type ids and
Public API (EMIL) ids, as ERCOT publishes them and the open-source gridstatus
library uses them), and their documents as the listings name them."""
import datetime
from typing import NamedTuple

from ercot_fast.timeutil import CENTRAL


class Report(NamedTuple):
    name: str  # ERCOT's report id, lower case: np4-190-cd
    title: str
    report_type_id: int  # the MIS listing's reportTypeId
    emil_id: str  # the Public API archive's id


REPORTS = {
    report.name: report
    for report in (
        Report("np4-190-cd", "DAM Settlement Point Prices", 12331, "np4-190-cd"),
        Report("np6-905-cd", "RTM Settlement Point Prices", 12301, "np6-905-cd"),
        Report("np4-188-cd", "DAM Clearing Prices for Capacity", 12329, "np4-188-cd"),
    )
}


class Document(NamedTuple):
    """One published document of a report, as a listing names it."""

    report: str  # Report.name
    doc_id: str
    name: str  # MIS: ConstructedName; Public API: friendlyName
    published: datetime.datetime  # aware; NOTE: for ordering and the record only, never for delivery times
    size: int | None  # bytes, when the listing says
    source: str  # "mis" or "api"

    @property
    def key(self):
        return f"{self.report}/{self.doc_id}"

    @property
    def file_name(self):
        """Its file while it waits for the ingest: numeric ids padded, so that
        names sort as ids do (the ingest's tie-break after modification time)."""
        return f"{self.doc_id.zfill(20)}.zip"


def parse_published(text):
    """An aware datetime of a listing's publish time: ISO 8601, with an offset
    (MIS) or without one, then Central time (the Public API)."""
    moment = datetime.datetime.fromisoformat(str(text).strip().replace("Z", "+00:00"))
    return moment if moment.tzinfo else moment.replace(tzinfo=CENTRAL)
