"""Bounded, per-worker memory for the dashboards that poll identical queries.

- ``ResponseCache``: rendered /api/prices answers, keyed by the normalised
  query (``query.PriceQuery``) and representation (format, layout, coding),
  so different spellings of one query (``da`` or ``day_ahead``, ``Z`` or
  ``-06:00``) share one entry; bounded in bytes.
- ``PreparedAnswers``: what a request's answer depends on (query string,
  Accept, Accept-Encoding) -> its prepared ``Answer``, so a repeated poll is
  not parsed again; bounded in entries; a relative query's (``now-24h``)
  entry expires when the next interval starts.

Both belong to one loaded store: a reload builds a new app with new, empty
ones, so changed data is never served from them.
"""
from collections import OrderedDict

from ercot_fast import timeutil


class ResponseCache:
    """Least-recently-used rendered bodies, bounded by their total size in bytes."""

    def __init__(self, max_bytes):
        self.max_bytes = max_bytes
        self.max_entry_bytes = max_bytes // 4  # one analyst pull must not evict every tile
        self.size = 0
        self.hits = self.misses = self.hit_bytes = 0  # for the metrics (PERF: counted here, read at a scrape)
        self._entries = OrderedDict()

    def get(self, key):
        entry = self._entries.get(key)
        if entry is None:
            self.misses += 1
            return None
        self._entries.move_to_end(key)
        self.hits += 1
        self.hit_bytes += entry[1]
        return entry[0]

    def put(self, key, value, size):
        """Keep ``value``, which holds ``size`` bytes of body."""
        if size > self.max_entry_bytes or key in self._entries:
            return
        self._entries[key] = (value, size)
        self.size += size
        while self.size > self.max_bytes:
            _, (_, evicted) = self._entries.popitem(last=False)
            self.size -= evicted

    def __len__(self):
        return len(self._entries)


class PreparedAnswers(dict):
    """answer key -> prepared Answer (with ``expires``, UTC ms or None);
    emptied when it reaches ``max_entries`` (a dashboard's working set
    refills it at once)."""

    def __init__(self, max_entries=4096):
        super().__init__()
        self.max_entries = max_entries

    def get(self, key):
        answer = dict.get(self, key)
        if answer is not None and answer.expires is not None and timeutil.now_ms() >= answer.expires:
            del self[key]
            return None
        return answer

    def remember(self, key, answer):
        if len(self) >= self.max_entries:
            self.clear()
        self[key] = answer
