"""HTTP for the fetcher: one requests session whose requests time out and are
retried with jittered exponential back-off (urllib3's Retry: connection
errors, 5xx and 429, honouring Retry-After), and downloads that reach their
final name only when every byte arrived.

requests earns its place over urllib.request: urllib3's Retry does the
back-off, streaming bodies and Content-Length checks come with it, and it is
already what the tests' clients use. A body cut off mid-way is not something
urllib3 retries (the response was already handed over), so ``download``
retries it itself.
"""
import hashlib
import logging
import os
import random
import time

import requests
from requests.adapters import HTTPAdapter
from urllib3.util.retry import Retry

from ercot_fast import __version__
from ercot_fast.errors import FetchError

log = logging.getLogger(__name__)

TIMEOUT = (10, 60)  # seconds to connect, and between two bytes of an answer
RETRIES = 6  # per request, for connection errors, 429 and 5xx
# urllib3's backoff_factor: retries at once, then after 4, 8, 16, 32, 60 s, each plus up to this much
# jitter; also the first wait of a download cut off (2-4 s, then 4-8 s)
BACKOFF_SECONDS = 2.0
BACKOFF_MAX_SECONDS = 60.0
DOWNLOAD_ATTEMPTS = 3  # a body cut off mid-way: tried again this many times in all
_BLOCK = 1 << 16
USER_AGENT = f"ercot-fast/{__version__}"


def session(backoff=BACKOFF_SECONDS):
    """A requests session with back-off on every request (``backoff``: its
    factor, also kept as ``session.backoff`` for ``download``)."""
    retry = Retry(
        total=RETRIES,
        connect=RETRIES,
        read=RETRIES,
        status=RETRIES,
        backoff_factor=backoff,
        backoff_jitter=backoff,
        backoff_max=BACKOFF_MAX_SECONDS,
        status_forcelist=(429, 500, 502, 503, 504),
        allowed_methods=None,  # every verb: the archive's POST download is idempotent too
        respect_retry_after_header=True,
        raise_on_status=False,  # the last answer comes back, and its status says why (``check``)
    )
    http = requests.Session()
    adapter = HTTPAdapter(max_retries=retry)
    http.mount("http://", adapter)
    http.mount("https://", adapter)
    http.headers["User-Agent"] = USER_AGENT
    http.backoff = backoff
    return http


def check(response, what):
    """Raise FetchError for an answer that is not a 2xx, saying what it was."""
    if response.status_code == 429:
        raise FetchError(f"{what}: ERCOT still throttles (429) after {RETRIES} retries with back-off",
                         "the next run tries again")
    if not 200 <= response.status_code < 300:
        raise FetchError(f"{what}: HTTP {response.status_code}", "the next run tries again")


def get_json(http, url, what, **kwargs):
    """The JSON of a GET (FetchError when it fails or is not JSON)."""
    try:
        response = http.get(url, timeout=TIMEOUT, **kwargs)
    except requests.RequestException as exc:
        raise FetchError(f"{what}: {reason(exc)}", "the next run tries again") from None
    check(response, what)
    try:
        return response.json()
    except ValueError:
        raise FetchError(f"{what}: the answer is not JSON", "is the URL ERCOT's?") from None


def download(http, method, url, target, what, size=None, headers=None, **kwargs):
    """Stream a document to ``target`` and return (size, sha256 hex). The
    bytes go to a temporary name beside it and are renamed only once all of
    them arrived (as many as Content-Length, else ``size`` (a listing's),
    said): a partial download never reaches ``target``. A body cut off is
    fetched again, up to DOWNLOAD_ATTEMPTS times; then FetchError."""
    part = target.with_name(f".{target.name}.part")
    headers = {**(headers or {}), "Accept-Encoding": "identity"}  # Content-Length then counts the bytes written
    for attempt in range(1, DOWNLOAD_ATTEMPTS + 1):
        try:
            return _download_once(http, method, url, part, target, headers, what, size, **kwargs)
        except (requests.RequestException, _Truncated) as exc:
            why = reason(exc)
        finally:
            part.unlink(missing_ok=True)
        if attempt < DOWNLOAD_ATTEMPTS:
            wait = http.backoff * 2 ** (attempt - 1)
            wait += random.uniform(0, wait)
            log.warning("%s: %s; trying again in %.1f s (%d of %d)", what, why, wait, attempt + 1, DOWNLOAD_ATTEMPTS)
            time.sleep(wait)
    raise FetchError(f"{what}: {why} ({DOWNLOAD_ATTEMPTS} attempts)", "the next run tries again")


def digest(path):
    """(size, sha256 hex) of a file."""
    sha, size = hashlib.sha256(), 0
    with open(path, "rb") as file:
        while block := file.read(_BLOCK):
            sha.update(block)
            size += len(block)
    return size, sha.hexdigest()


class _Truncated(Exception):
    pass


def _download_once(http, method, url, part, target, headers, what, listed_size, **kwargs):
    with http.request(method, url, stream=True, timeout=TIMEOUT, headers=headers, **kwargs) as response:
        check(response, what)
        expected = response.headers.get("content-length") or (str(listed_size) if listed_size else None)
        sha, size = hashlib.sha256(), 0
        with open(part, "wb") as file:
            for block in response.iter_content(_BLOCK):
                file.write(block)
                sha.update(block)
                size += len(block)
    if expected is not None and expected.isdigit() and size != int(expected):
        raise _Truncated(f"the connection ended after {size} of {expected} bytes")
    os.replace(part, target)
    return size, sha.hexdigest()


def reason(exc):
    """A short reason for a failed request (never a header or a body)."""
    if isinstance(exc, _Truncated):
        return str(exc)
    if isinstance(exc, requests.Timeout):
        return "no answer in time"
    if isinstance(exc, requests.exceptions.RetryError):
        return f"ERCOT still throttles or fails after {RETRIES} retries with back-off"
    if isinstance(exc, requests.exceptions.ChunkedEncodingError):
        return "the connection ended mid-download"
    if isinstance(exc, requests.ConnectionError):
        return "cannot connect"
    return type(exc).__name__
