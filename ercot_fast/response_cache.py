"""A bounded, per-worker cache of rendered /api/prices answers for the
dashboards that poll identical queries.

Entries are keyed by the normalised query (``query.PriceQuery``), so different
spellings of one query (``da`` or ``day_ahead``, ``Z`` or ``-06:00``) share one
entry. Each raw query string seen is an alias of its entry, so a repeated poll
is answered without parsing it again. A cache belongs to one loaded store: a
reload builds a new app with a new, empty cache, so changed data is never
served from it.
"""
from collections import OrderedDict


class ResponseCache:
    """Least-recently-used ``(etag, body)`` entries, bounded by the total size
    of their bodies in bytes."""

    def __init__(self, max_bytes):
        self.max_bytes = max_bytes
        self.max_entry_bytes = max_bytes // 4  # one analyst pull must not evict every tile
        self.size = 0
        self._entries = OrderedDict()  # normalised query -> (etag, body)
        self._aliases = {}  # raw query string -> normalised query

    def get(self, raw):
        """The entry a raw query string was seen with, or None."""
        key = self._aliases.get(raw)
        if key is None:
            return None
        entry = self._entries.get(key)
        if entry is None:  # evicted since
            del self._aliases[raw]
            return None
        self._entries.move_to_end(key)
        return entry

    def find(self, raw, key):
        """The entry of a normalised query, remembered for ``raw`` too."""
        entry = self._entries.get(key)
        if entry is not None:
            self._alias(raw, key)
        return entry

    def put(self, raw, key, etag, body):
        if len(body) > self.max_entry_bytes:
            return
        if key not in self._entries:
            self._entries[key] = (etag, body)
            self.size += len(body)
            while self.size > self.max_bytes:
                _, (_, evicted) = self._entries.popitem(last=False)
                self.size -= len(evicted)
        self._alias(raw, key)

    def _alias(self, raw, key):
        if len(self._aliases) >= 8 * len(self._entries) + 1024:
            self._aliases.clear()  # bound the aliases of evicted entries; live ones come back on the next miss
        self._aliases[raw] = key

    def __len__(self):
        return len(self._entries)
