"""ERCOT's MIS: the document listing of a report (no authentication, a
recent window of days to about a month) and each document's download.

``GET {mis}/misapp/servlets/IceDocListJsonWS?reportTypeId=<id>`` answers
``{"ListDocsByRptTypeRes": {"DocumentList": [{"Document": {"DocID",
"ConstructedName", "FriendlyName", "PublishDate", "ContentSize", ...}}]}}``;
``GET {mis}/misdownload/servlets/mirDownload?doclookupId=<DocID>`` the document.
Only CSV documents (``csv.zip`` in the name) are kept: ERCOT publishes each
report as XML too.
"""
import logging

from ercot_fast.errors import FetchError
from ercot_fast.fetch import http as fetch_http
from ercot_fast.fetch.reports import REPORTS, Document, parse_published

log = logging.getLogger(__name__)

LISTING = "/misapp/servlets/IceDocListJsonWS"
DOWNLOAD = "/misdownload/servlets/mirDownload"


def listing(http, mis_url, report):
    """The CSV documents the MIS lists for ``report`` (a Report name)."""
    what = f"the MIS listing of {report.upper()}"
    payload = fetch_http.get_json(http, mis_url + LISTING, what, params={"reportTypeId": REPORTS[report].report_type_id})
    try:
        entries = (payload["ListDocsByRptTypeRes"] or {}).get("DocumentList") or []
    except (KeyError, TypeError, AttributeError):
        raise FetchError(f"{what}: not the MIS's answer (no ListDocsByRptTypeRes)", "is --mis-url ERCOT's MIS?") from None
    documents = []
    for entry in entries:
        found = entry.get("Document") if isinstance(entry, dict) else None
        for doc in found if isinstance(found, list) else [found]:
            try:
                if "csv.zip" not in doc["ConstructedName"].lower():
                    continue
                size = doc.get("ContentSize")
                documents.append(Document(report, str(doc["DocID"]), doc["ConstructedName"],
                                          parse_published(doc["PublishDate"]),
                                          int(size) if str(size or "").isdigit() else None, "mis"))
            except (KeyError, TypeError, AttributeError, ValueError):
                log.warning("%s: skipped an entry that is not a document: %.200r", what, doc)
    return documents


def download(http, mis_url, document, target):
    """Download one listed document to ``target``: (size, sha256)."""
    return fetch_http.download(http, "GET", mis_url + DOWNLOAD, target, f"{document.name} (MIS doc {document.doc_id})",
                               size=document.size, params={"doclookupId": document.doc_id})
