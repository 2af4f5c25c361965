"""ERCOT's Public API, for backfill: the archive of a report's documents
(from 2023-12-11), listed by publish time and downloaded up to 1,000 at a time.

``GET {api}/archive/<emilId>?postDatetimeFrom=...&postDatetimeTo=...&size=1000&page=n``
answers ``{"_meta": {"totalPages"}, "archives": [{"docId", "friendlyName",
"postDatetime", "_links"}]}``; ``POST {api}/archive/<emilId>/download`` with
``{"docIds": [...]}`` a ZIP holding ``<docId>.zip`` per document. Every
request carries the subscription key (``Ocp-Apim-Subscription-Key``) and a
bearer id_token from ERCOT's B2C token endpoint (username and password; a
token lasts an hour). ERCOT allows 30 requests a minute: requests are paced
to that, and a 429 backs off (``fetch.http``).

The credentials come from the environment only and are never logged, shown
or put in an error message.
"""
import datetime
import logging
import time
import zipfile
from pathlib import Path

import requests

from ercot_fast.errors import FetchError
from ercot_fast.fetch import http as fetch_http
from ercot_fast.fetch.reports import REPORTS, Document, parse_published
from ercot_fast.timeutil import CENTRAL

log = logging.getLogger(__name__)

ENV_KEY, ENV_USERNAME, ENV_PASSWORD = "ERCOT_API_KEY", "ERCOT_USERNAME", "ERCOT_PASSWORD"
FIRST_DAY = datetime.date(2023, 12, 11)  # the archive holds nothing older
REQUESTS_PER_MINUTE = 30
PAGE_SIZE = 1000
MOST_DOCUMENTS = 1000  # per download request
TOKEN_SECONDS = 3300  # a token lasts an hour: a new one five minutes before
CLIENT_ID = "fec253ea-0d06-4272-a5e6-b478baeecd70"  # the Public API's, from ERCOT's documentation
_TIME_FORMAT = "%Y-%m-%dT%H:%M:%S"  # Central wall-clock time, as the archive filters


class Credentials:
    """The Public API's subscription key, username and password; shown as ***."""

    __slots__ = ("key", "username", "password")

    def __init__(self, key, username, password):
        self.key, self.username, self.password = key, username, password

    def __repr__(self):
        return "Credentials(***)"

    @classmethod
    def from_environ(cls, environ):
        """The credentials of the environment, or None when none is set;
        FetchError naming the variables missing when only some are."""
        names = (ENV_KEY, ENV_USERNAME, ENV_PASSWORD)
        given = [environ.get(name) for name in names]
        if not any(given):
            return None
        missing = [name for name, value in zip(names, given) if not value]
        if missing:
            raise FetchError(f"the Public API needs {', '.join(names)}: {', '.join(missing)} not set",
                             "set all three in the environment, or none to fetch from the MIS only")
        return cls(*given)


def _doc_id(entry):
    """An archive entry's docId, or the id its download link ends with (``...?download=<docId>``)."""
    if entry.get("docId") is not None:
        return str(entry["docId"])
    return entry["_links"]["endpoint"]["href"].rsplit("=", 1)[1]


class Archive:
    """The Public API's archive of reports, for one run."""

    def __init__(self, http, api_url, token_url, credentials, requests_per_minute=REQUESTS_PER_MINUTE):
        self._http = http
        self._api_url = api_url
        self._token_url = token_url
        self._credentials = credentials
        self._spacing = 60.0 / requests_per_minute
        self._last_request = None
        self._token = None
        self._token_until = 0.0

    def listing(self, report, start, end):
        """The documents of ``report`` published from ``start`` to ``end`` (aware datetimes)."""
        emil = REPORTS[report].emil_id
        what = f"the Public API archive of {report.upper()}"
        params = {"postDatetimeFrom": start.astimezone(CENTRAL).strftime(_TIME_FORMAT),
                  "postDatetimeTo": end.astimezone(CENTRAL).strftime(_TIME_FORMAT), "size": PAGE_SIZE}
        documents, page, pages = [], 1, 1
        while page <= pages:
            answer = fetch_http.get_json(self._http, f"{self._api_url}/archive/{emil}", what,
                                         params={**params, "page": page}, headers=self._headers())
            try:
                pages = int(answer["_meta"]["totalPages"])
                entries = answer["archives"] or []
            except (KeyError, TypeError, ValueError):
                raise FetchError(f"{what}: not the archive's answer (no _meta.totalPages, archives)",
                                 "is --api-url ERCOT's Public API?") from None
            for entry in entries:
                try:
                    documents.append(Document(report, _doc_id(entry), str(entry["friendlyName"]),
                                              parse_published(entry["postDatetime"]), None, "api"))
                except (KeyError, TypeError, ValueError, IndexError, AttributeError):
                    log.warning("%s: skipped an entry that is not a document: %.200r", what, entry)
            page += 1
        return documents

    def download(self, report, documents, folder):
        """Download ``documents`` (at most MOST_DOCUMENTS, of ``report``) into
        ``folder`` as their ``file_name``: {doc_id: (size, sha256)} of those
        the answer held. FetchError when the request fails."""
        emil = REPORTS[report].emil_id
        bundle = Path(folder) / f"bundle-{report}.zip"
        fetch_http.download(self._http, "POST", f"{self._api_url}/archive/{emil}/download", bundle,
                            f"the Public API download of {len(documents)} {report.upper()} documents",
                            json={"docIds": [d.doc_id for d in documents]}, headers=self._headers())
        wanted = {d.doc_id: d for d in documents}
        found = {}
        try:
            with zipfile.ZipFile(bundle) as archive:
                for member in archive.infolist():
                    doc_id = Path(member.filename).name.split(".")[0]
                    if doc_id in wanted and not member.is_dir():
                        target = Path(folder) / wanted[doc_id].file_name
                        target.write_bytes(archive.read(member))
                        found[doc_id] = fetch_http.digest(target)
        except (zipfile.BadZipFile, OSError, EOFError) as exc:
            raise FetchError(f"the Public API download of {report.upper()} is not a readable ZIP ({exc})",
                             "the next run tries again") from None
        finally:
            bundle.unlink(missing_ok=True)
        return found

    def _headers(self):
        """The two credentials every request needs, after pacing it."""
        if self._last_request is not None:
            time.sleep(max(0.0, self._last_request + self._spacing - time.monotonic()))
        self._last_request = time.monotonic()
        if self._token is None or time.monotonic() >= self._token_until:
            self._token = self._new_token()
            self._token_until = time.monotonic() + TOKEN_SECONDS
        return {"Authorization": f"Bearer {self._token}", "Ocp-Apim-Subscription-Key": self._credentials.key}

    def _new_token(self):
        what = "the Public API's token endpoint"
        form = {
            "grant_type": "password",
            "username": self._credentials.username,
            "password": self._credentials.password,
            "response_type": "id_token",
            "scope": f"openid {CLIENT_ID} offline_access",
            "client_id": CLIENT_ID,
        }
        try:
            response = self._http.post(self._token_url, data=form, timeout=fetch_http.TIMEOUT)
        except requests.RequestException as exc:
            raise FetchError(f"{what}: {fetch_http.reason(exc)}", "the next run tries again") from None
        if response.status_code in (400, 401, 403):
            raise FetchError(f"{what} refused the credentials (HTTP {response.status_code})",
                             f"check {ENV_USERNAME} and {ENV_PASSWORD}")
        fetch_http.check(response, what)
        try:
            return response.json()["id_token"]
        except (ValueError, KeyError, TypeError):
            raise FetchError(f"{what}: no id_token in its answer", "is --token-url ERCOT's B2C token endpoint?") from None
