"""A bounded, per-worker cache of rendered /api/prices bodies for the
dashboards that poll identical queries.

Keys are normalised queries (``query.PriceQuery``): different spellings of one
query (``da`` or ``day_ahead``, ``Z`` or ``-06:00``) share an entry. A cache
belongs to one loaded store: a reload builds a new app with a new, empty cache,
so changed data is never served from it.
"""
from collections import OrderedDict


class ResponseCache:
    """Least-recently-used bodies, bounded by their total size in bytes."""

    def __init__(self, max_bytes):
        self.max_bytes = max_bytes
        self.max_entry_bytes = max_bytes // 4  # one analyst pull must not evict every tile
        self.size = 0
        self._entries = OrderedDict()

    def get(self, key):
        body = self._entries.get(key)
        if body is not None:
            self._entries.move_to_end(key)
        return body

    def put(self, key, body):
        if len(body) > self.max_entry_bytes or key in self._entries:
            return
        self._entries[key] = body
        self.size += len(body)
        while self.size > self.max_bytes:
            _, evicted = self._entries.popitem(last=False)
            self.size -= len(evicted)

    def __len__(self):
        return len(self._entries)
