"""API keys: one ``name:key`` per line of ``--api-keys-file`` (blank lines
and ``#`` comments skipped; read again on SIGHUP), and/or ``API_KEYS``
(``name:key,name:key``). No keys configured: the service is open.

Only the keys' SHA-256 digests are kept and published to the serving
processes; a presented key is hashed and compared with every digest, each
comparison in constant time and without stopping at a match, so how long a
check takes says nothing about the keys.
"""
import hashlib
import hmac
import re

_NAME = re.compile(r"[A-Za-z0-9_.@-]{1,64}")
MIN_KEY_CHARS = 16
ENV = "API_KEYS"
SEND_IT = "send it as the header X-API-Key: <key>, or Authorization: Bearer <key>"


class ApiKeys:
    """The accepted keys, as {name: SHA-256 hex digest}."""

    def __init__(self, digests=None):
        self.digests = dict(digests or {})
        self._digests = [(name, bytes.fromhex(digest)) for name, digest in self.digests.items()]

    @property
    def enabled(self):
        return bool(self._digests)

    def identify(self, key):
        """The name of ``key`` (str or bytes), or None when no key matches."""
        if key is None:
            return None
        presented = hashlib.sha256(key.encode("utf-8", "replace") if isinstance(key, str) else key).digest()
        found = None
        for name, digest in self._digests:
            if hmac.compare_digest(presented, digest) and found is None:
                found = name
        return found

    def __eq__(self, other):
        return isinstance(other, ApiKeys) and other.digests == self.digests


def digest(key):
    return hashlib.sha256(key.encode()).hexdigest()


def parse(text, source):
    """``name:key`` lines (or comma-separated pairs) -> {name: key};
    ValueError naming ``source`` and the line at fault."""
    keys = {}
    entries, unit = (text.split(","), "entry") if source == ENV else (text.splitlines(), "line")
    for number, line in enumerate(entries, 1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        where = f"{source}, {unit} {number}"
        name, sep, key = (part.strip() for part in line.partition(":"))
        if not sep or not name or not key:
            raise ValueError(f"{where}: not name:key")
        if not _NAME.fullmatch(name):
            raise ValueError(f"{where}: the name {name!r} is not 1-64 letters, digits or _.@-")
        if len(key) < MIN_KEY_CHARS or any(c.isspace() for c in key):
            raise ValueError(f"{where}: the key of {name!r} has fewer than {MIN_KEY_CHARS} characters or a space "
                             "(make one with: python -c 'import secrets; print(secrets.token_urlsafe(24))')")
        if name in keys:
            raise ValueError(f"{where}: the name {name!r} is given twice")
        if key in keys.values():
            raise ValueError(f"{where}: the key of {name!r} is also another name's")
        keys[name] = key
    return keys


def load(path=None, env_text=None):
    """The ApiKeys of the keys file at ``path`` and of ``API_KEYS`` text;
    ValueError saying what to fix (an unreadable file, a bad line)."""
    keys = {}
    if path:
        try:
            with open(path, encoding="utf-8") as f:
                text = f.read()
        except (OSError, UnicodeDecodeError) as exc:
            raise ValueError(f"the API keys file {path} cannot be read ({getattr(exc, 'strerror', None) or exc})") from None
        keys.update(parse(text, path))
    if env_text:
        for name, key in parse(env_text, ENV).items():
            if name in keys:
                raise ValueError(f"{ENV}: the name {name!r} is also in {path}")
            keys[name] = key
    return ApiKeys({name: digest(key) for name, key in keys.items()})


def presented(x_api_key, authorization):
    """The key a request carries: ``X-API-Key``, else ``Authorization: Bearer``."""
    if x_api_key:
        return x_api_key.strip()
    if authorization:
        scheme, _, credentials = authorization.strip().partition(" ")
        if scheme.lower() == "bearer" and credentials.strip():
            return credentials.strip()
    return None
