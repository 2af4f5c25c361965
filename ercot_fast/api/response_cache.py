"""Bounded, per-worker memory for the dashboards that poll identical queries.

- ``ResponseCache``: rendered /api/prices answers, keyed by the normalised
  query (``query.PriceQuery``), so different spellings of one query (``da`` or
  ``day_ahead``, ``Z`` or ``-06:00``) share one entry; bounded in bytes.
- ``ParsedQueries``: raw query string -> its checked query and ETag, so a
  repeated poll is not parsed again; bounded in entries.

Both belong to one loaded store: a reload builds a new app with new, empty
ones, so changed data is never served from them.
"""
from collections import OrderedDict


class ResponseCache:
    """Least-recently-used rendered bodies, bounded by their total size in bytes."""

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


class ParsedQueries(dict):
    """raw query string -> (checked query, etag); emptied when it reaches
    ``max_entries`` (a dashboard's working set refills it at once)."""

    def __init__(self, max_entries=4096):
        super().__init__()
        self.max_entries = max_entries

    def remember(self, raw, parsed):
        if len(self) >= self.max_entries:
            self.clear()
        self[raw] = parsed
