"""The rate limit: a token bucket per API key (per client address when no
keys are configured), ``rate`` tokens a second up to ``burst``, held for the
whole service: every HTTP worker and the Flight child take from the same
buckets.

The buckets live in one file of the runtime folder, mapped by every process
(the master creates it before it forks them). Each bucket is updated under
an ``fcntl`` lock of its own bytes, which the kernel releases when its holder
dies: a worker killed in the middle of an update never blocks the others. A
bucket is found by a 64-bit fingerprint of its key; two keys sharing a slot
(of 65,536) take turns owning it, each starting full when it takes over.
"""
import fcntl
import hashlib
import math
import mmap
import os
import struct
import threading
import time

SLOTS = 1 << 16
_SLOT = struct.Struct("<Qdd")  # the owner's fingerprint, tokens left, CLOCK_MONOTONIC of the last update
FILE_NAME = "rate-limit"


class RateLimit:
    """Token buckets shared by the processes forked after it is made."""

    def __init__(self, rate, burst, folder):
        if rate <= 0 or burst < 1:
            raise ValueError("the rate must be positive and the burst at least 1")
        self.rate = float(rate)
        self.burst = float(burst)
        path = os.path.join(folder, FILE_NAME)
        self._fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
        os.ftruncate(self._fd, SLOTS * _SLOT.size)
        self._map = mmap.mmap(self._fd, SLOTS * _SLOT.size)
        self._lock = threading.Lock()  # NOTE: fcntl locks are per process: threads (Flight's) also take this
        self._fingerprints = {}

    def take(self, who):
        """Take one token from ``who``'s bucket: 0.0 when there was one,
        else the seconds until there is (the request is refused)."""
        fingerprint = self._fingerprints.get(who)
        if fingerprint is None:
            if len(self._fingerprints) > 100_000:
                self._fingerprints.clear()
            fingerprint = int.from_bytes(hashlib.blake2b(who.encode(), digest_size=8).digest(), "little") | 1
            self._fingerprints[who] = fingerprint
        offset = (fingerprint >> 1) % SLOTS * _SLOT.size
        with self._lock:
            fcntl.lockf(self._fd, fcntl.LOCK_EX, _SLOT.size, offset)
            try:
                owner, tokens, stamp = _SLOT.unpack_from(self._map, offset)
                now = time.monotonic()
                if owner != fingerprint:
                    tokens, stamp = self.burst, now
                tokens = min(self.burst, tokens + (now - stamp) * self.rate)
                wait = 0.0 if tokens >= 1 else (1 - tokens) / self.rate
                if not wait:
                    tokens -= 1
                _SLOT.pack_into(self._map, offset, fingerprint, tokens, now)
            finally:
                fcntl.lockf(self._fd, fcntl.LOCK_UN, _SLOT.size, offset)
        return wait

    @staticmethod
    def retry_after(wait):
        """Whole seconds for a Retry-After header (at least 1)."""
        return max(1, math.ceil(wait))

    def describe(self):
        return f"{self.rate:g} requests/s (burst {self.burst:g})"
