"""What the fetcher has done, kept in the data directory: the manifest of the
documents it fetched (doc id, name, publish time, size, sha256, and whether
they were ingested or found corrupt) while a listing may still show them, how
far the Public API's archive has been listed, the lock that lets one fetch run at a time, and the folder where
downloads wait for the ingest.

All of it lives in ``DATA_DIR/.fetch/``: a hidden folder, which the store's
loader passes over. The manifest is written atomically (``files``): a crash
leaves the one before, and a document fetched but not recorded is fetched
and ingested again, which changes nothing (the ingest is idempotent).
"""
import contextlib
import datetime
import fcntl
import json
import shutil
from pathlib import Path

from ercot_fast.errors import FetchError
from ercot_fast.files import write_atomically

FOLDER = ".fetch"
FORMAT = 1
KEEP = datetime.timedelta(days=62)  # records of documents no listing shows are kept this long after publication
INGESTED, CORRUPT = "ingested", "corrupt"


def folder(data_dir):
    return Path(data_dir) / FOLDER


@contextlib.contextmanager
def locked(data_dir):
    """Hold the fetcher's lock of ``data_dir`` (FetchError when another fetch holds it)."""
    root = folder(data_dir)
    root.mkdir(parents=True, exist_ok=True)
    with open(root / ".lock", "a+b") as lock:
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            raise FetchError(f"another `ercot-fast fetch` is running on {data_dir}",
                             "let it finish, or stop it; one fetch at a time keeps the manifest whole") from None
        yield


def incoming(data_dir):
    """The empty folder downloads wait in (what a stopped run left there is
    not in the manifest, so it is thrown away and fetched again)."""
    path = folder(data_dir) / "incoming"
    shutil.rmtree(path, ignore_errors=True)
    path.mkdir(parents=True)
    return path


class Manifest:
    """The documents fetched into one data directory."""

    def __init__(self, path, documents, archive_listed):
        self.path = path
        self.documents = documents  # Document.key -> record
        self.archive_listed = archive_listed  # report -> {"since": --since, "to": ISO time listed up to}

    @classmethod
    def load(cls, data_dir):
        path = folder(data_dir) / "manifest.json"
        try:
            state = json.loads(path.read_bytes())
        except FileNotFoundError:
            return cls(path, {}, {})
        except (OSError, ValueError) as exc:
            raise FetchError(f"the fetch manifest {path} cannot be read ({exc})",
                             "move it away to fetch (and ingest again) every document ERCOT lists") from None
        if not isinstance(state, dict) or state.get("format") != FORMAT:
            raise FetchError(f"the fetch manifest {path} is not one this version writes",
                             "move it away to fetch (and ingest again) every document ERCOT lists")
        return cls(path, state.get("documents", {}), state.get("archive_listed", {}))

    def holds(self, document):
        return document.key in self.documents

    def record(self, document, size, sha256, status, why=None):
        entry = {
            "report": document.report,
            "doc_id": document.doc_id,
            "name": document.name,
            "published": document.published.isoformat(),
            "size": size,
            "sha256": sha256,
            "source": document.source,
            "status": status,
            "fetched": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        }
        if why:
            entry["why"] = why
        self.documents[document.key] = entry

    def forget(self, keep, older_than):
        """Drop the records of documents no listing shows any more: those not
        in ``keep`` (the keys this run listed) published before ``older_than``
        (the MIS lists a month at most; the archive is listed on from where it
        ended). One listed again is fetched again, which changes nothing."""
        self.documents = {
            key: record for key, record in self.documents.items()
            if key in keep or datetime.datetime.fromisoformat(record["published"]) >= older_than
        }

    def save(self):
        state = {"format": FORMAT, "archive_listed": self.archive_listed, "documents": self.documents}
        write_atomically(self.path, json.dumps(state, indent=0, sort_keys=True).encode())
