"""A stand-in for ERCOT's servers, for the fetcher's tests: a ThreadingHTTPServer
on 127.0.0.1 (a free port, stopped by the test) answering like the MIS
listing and download, the B2C token endpoint and the Public API's archive
(list and bulk download, with its two credentials and its 429s), from
documents the test publishes, built from the real CSVs (``day_documents``,
``interval_documents``).

The shapes are those ERCOT answers with (as the open-source gridstatus
library reads them): ``ListDocsByRptTypeRes.DocumentList[].Document``;
``_meta.totalPages`` and ``archives[]``; a ZIP of ``<docId>.zip``.
"""
import collections
import datetime as dt
import io
import json
import secrets
import threading
import time
import urllib.parse
import zipfile
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from reference_layout import CENTRAL

REPORT_TYPE_IDS = {"np4-190-cd": 12331, "np6-905-cd": 12301, "np4-188-cd": 12329}
API_PREFIX = "/api/public-reports"
TOKEN_PATH = "/b2c/token"
STALL_SECONDS = 1.5


def zip_of(members):
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, data in members.items():
            archive.writestr(name, data)
    return buf.getvalue()


def day_documents(path, days, kind="DAMSPNP4190"):
    """{MM/DD/YYYY: (name, ZIP bytes)}: one document per delivery day of a
    report CSV (day-ahead, ancillary), as ERCOT publishes them, rows copied byte for byte."""
    with open(path, newline="") as f:
        header = f.readline()
        rows = collections.defaultdict(list)
        for line in f:
            if line[:10] in days:
                rows[line[:10]].append(line)
    found = {}
    for day in days:
        stamp = dt.datetime.strptime(day, "%m/%d/%Y").strftime("%Y%m%d")
        name = f"cdr.00012331.0000000000000000.{stamp}.123005.{kind}.csv"
        found[day] = (f"{name}.zip", zip_of({name: header + "".join(rows[day])}))
    return found


def interval_documents(path, day):
    """[(name, ZIP bytes)]: one document per 15-minute interval of one delivery
    day of an NP6-905-CD CSV, as ERCOT publishes them."""
    with open(path, newline="") as f:
        header = f.readline()
        rows = collections.defaultdict(list)
        for line in f:
            if line[:10] == day:
                date, hour, interval = line.split(",")[:3]
                rows[int(hour), int(interval)].append(line)
    stamp = dt.datetime.strptime(day, "%m/%d/%Y").strftime("%Y%m%d")
    found = []
    for (hour, interval), lines in sorted(rows.items()):
        name = f"cdr.00012301.0000000000000000.{stamp}.{hour:02d}{interval:02d}00.SPPHLZNP6905_{stamp}_{hour:02d}{interval:02d}.csv"
        found.append((f"{name}.zip", zip_of({name: header + "".join(lines)})))
    return found


class StandIn:
    """ERCOT's MIS and Public API on 127.0.0.1."""

    def __init__(self, api_key="test-subscription-key", username="test-user", password="test-password-1234"):
        self.api_key, self.username, self.password = api_key, username, password
        self.listed = collections.defaultdict(list)  # report type id -> Document dicts
        self.archived = collections.defaultdict(list)  # emil id -> archive entries
        self.blobs = {}  # doc id -> bytes
        self.throttle = 0  # the next this many Public API requests answer 429
        self.drops = collections.Counter()  # doc id -> downloads to cut off mid-body
        self.bulk_broken = False  # the Public API's download answers 503
        self.stalls = collections.Counter()  # doc id -> downloads that wait STALL_SECONDS before answering
        self.requests = collections.Counter()  # (kind, detail) -> count
        self.tokens = set()
        self._next_id = 900_000_000
        self._lock = threading.Lock()
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(self))
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    @property
    def url(self):
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    @property
    def api_url(self):
        return self.url + API_PREFIX

    @property
    def token_url(self):
        return self.url + TOKEN_PATH

    def credentials(self):
        return {"ERCOT_API_KEY": self.api_key, "ERCOT_USERNAME": self.username, "ERCOT_PASSWORD": self.password}

    def close(self):
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(timeout=10)

    def new_id(self):
        with self._lock:
            self._next_id += 1
            return str(self._next_id)

    def publish(self, report, name, blob, published, size=None, doc_id=None):
        """List a document on the MIS (and its XML twin, which the fetcher
        must pass over); returns its DocID (``doc_id``: one the archive holds
        too). ``published``: an aware datetime."""
        doc_id = doc_id or self.new_id()
        self.blobs[doc_id] = blob
        rtid = REPORT_TYPE_IDS[report]
        stamp = published.isoformat()
        for constructed, content_size in ((name, len(blob) if size is None else size),
                                          (name.replace("csv.zip", "xml.zip"), 999)):
            entry = {"Document": {
                "ExpiredDate": "2099-01-01T00:00:00-06:00", "ILMStatus": "EXT", "SecurityStatus": "P",
                "ContentSize": str(content_size), "Extension": "zip", "ReportTypeID": rtid,
                "FriendlyName": constructed.split(".")[-3] + ("_csv" if "csv" in constructed else "_xml"),
                "ConstructedName": constructed, "DocID": doc_id if constructed == name else self.new_id(),
                "PublishDate": stamp,
            }}
            self.listed[rtid].insert(0, entry)  # newest first, as ERCOT lists
        return doc_id

    def unpublish_all(self, report):
        """The MIS's window moved on: nothing listed any more."""
        self.listed[REPORT_TYPE_IDS[report]].clear()

    def archive(self, report, name, blob, posted, link_only=False):
        """Put a document in the Public API's archive; returns its docId.
        ``posted``: a naive Central datetime, as the archive reports it;
        ``link_only``: the entry names its docId only in its download link."""
        doc_id = self.new_id()
        self.blobs[doc_id] = blob
        entry = {
            "docId": int(doc_id), "friendlyName": name.removesuffix(".zip"), "postDatetime": posted.isoformat(timespec="seconds"),
            "_links": {"endpoint": {"href": f"{self.api_url}/archive/{report}?download={doc_id}"}},
        }
        if link_only:
            del entry["docId"]
        self.archived[report].append(entry)
        return doc_id

    def downloads(self):
        """Doc id -> times it was downloaded (MIS or Public API)."""
        return collections.Counter({k[1]: n for k, n in self.requests.items() if k[0] in ("download", "bulk-member")})


def _handler(standin):
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        disable_nagle_algorithm = True  # headers and body are two writes: no 40 ms delayed-ACK stall between them

        def log_message(self, *args):  # quiet
            pass

        def _send(self, status, body, content_type="application/json", headers=()):
            data = body if isinstance(body, bytes) else json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(data)))
            for name, value in headers:
                self.send_header(name, value)
            self.end_headers()
            self.wfile.write(data)

        def _body(self):
            return self.rfile.read(int(self.headers.get("Content-Length") or 0))

        def do_GET(self):
            url = urllib.parse.urlsplit(self.path)
            query = dict(urllib.parse.parse_qsl(url.query))
            if url.path == "/misapp/servlets/IceDocListJsonWS":
                standin.requests["listing", query.get("reportTypeId")] += 1
                docs = standin.listed.get(int(query.get("reportTypeId", 0)), [])
                return self._send(200, {"ListDocsByRptTypeRes": {"DocumentList": list(docs)}})
            if url.path == "/misdownload/servlets/mirDownload":
                return self._download(query.get("doclookupId"))
            if url.path.startswith(API_PREFIX + "/archive/"):
                if not self._api_allowed():
                    return
                report = url.path.removeprefix(API_PREFIX + "/archive/")
                standin.requests["archive-list", report] += 1
                return self._archive_page(report, query)
            self._send(404, {"error": "no such page"})

        def do_POST(self):
            url = urllib.parse.urlsplit(self.path)
            body = self._body()
            if url.path == TOKEN_PATH:
                form = dict(urllib.parse.parse_qsl(body.decode()))
                standin.requests["token", ""] += 1
                if (form.get("username"), form.get("password"), form.get("grant_type")) != (
                        standin.username, standin.password, "password"):
                    return self._send(400, {"error": "invalid_grant", "error_description": "AADB2C90225"})
                token = secrets.token_urlsafe(16)
                standin.tokens.add(token)
                return self._send(200, {"id_token": token, "token_type": "Bearer", "expires_in": 3600})
            if url.path.startswith(API_PREFIX + "/archive/") and url.path.endswith("/download"):
                if not self._api_allowed():
                    return
                if standin.bulk_broken:
                    return self._send(503, {"error": "service unavailable"})
                ids = [str(i) for i in json.loads(body)["docIds"]]
                if len(ids) > 1000:
                    return self._send(400, {"error": "at most 1000 docIds"})
                for doc_id in ids:
                    standin.requests["bulk-member", doc_id] += 1
                return self._send(200, zip_of({f"{i}.zip": standin.blobs[i] for i in ids if i in standin.blobs}),
                                  "application/zip")
            self._send(404, {"error": "no such page"})

        def _api_allowed(self):
            """The Public API's checks: 429 while throttled, then both credentials."""
            with standin._lock:
                throttled = standin.throttle > 0
                standin.throttle -= throttled
            if throttled:
                standin.requests["429", ""] += 1
                self._send(429, {"error_key": "throttled"})
                return False
            bearer = self.headers.get("Authorization", "").removeprefix("Bearer ")
            if self.headers.get("Ocp-Apim-Subscription-Key") != standin.api_key or bearer not in standin.tokens:
                self._send(401, {"statusCode": 401, "message": "Access denied"})
                return False
            return True

        def _archive_page(self, report, query):
            start = dt.datetime.fromisoformat(query["postDatetimeFrom"])
            end = dt.datetime.fromisoformat(query["postDatetimeTo"])
            size, page = int(query.get("size", 1000)), int(query.get("page", 1))
            entries = [e for e in standin.archived.get(report, [])
                       if start <= dt.datetime.fromisoformat(e["postDatetime"]) <= end]
            pages = max(1, -(-len(entries) // size))
            chosen = entries[(page - 1) * size: page * size]
            self._send(200, {"_meta": {"totalRecords": len(entries), "pageSize": size, "totalPages": pages,
                                       "currentPage": page}, "archives": chosen})

        def _download(self, doc_id):
            standin.requests["download", doc_id] += 1
            with standin._lock:
                stall = standin.stalls[doc_id] > 0
                standin.stalls[doc_id] -= stall
            if stall:
                time.sleep(STALL_SECONDS)
            blob = standin.blobs.get(doc_id)
            if blob is None:
                return self._send(404, {"error": "no such document"})
            with standin._lock:
                drop = standin.drops[doc_id] > 0
                standin.drops[doc_id] -= drop
            if not drop:
                return self._send(200, blob, "application/zip")
            self.send_response(200)  # the connection breaks half-way through the body
            self.send_header("Content-Type", "application/zip")
            self.send_header("Content-Length", str(len(blob)))
            self.end_headers()
            self.wfile.write(blob[: len(blob) // 2])
            self.wfile.flush()
            self.close_connection = True
            self.connection.shutdown(2)

    return Handler


def central(*args):
    """An aware Central-time datetime."""
    return dt.datetime(*args, tzinfo=CENTRAL)
