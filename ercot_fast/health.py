"""The service's health: whether it can serve, what is wrong while it serves,
and the body that says so, for every transport (HTTP ``/api/health``, the
Flight ``healthcheck`` action); and its readiness, whether it should get
traffic (HTTP ``/api/ready``, the gRPC health service).

- ``healthy`` (serving, nothing wrong);
- ``degraded`` (still serving) with a ``problems`` list: files skipped as
  unreadable, the last reload failed or was refused, data older than
  ``--stale-after``;
- ``no_data`` (cannot serve: HTTP 503, Flight UNAVAILABLE).

A problem is ``{"problem": <code>, "details": <what is wrong and what to do>}``;
the master's own problems (reloads) reach every process with the store.

Readiness: ``ready`` once prices are loaded, ``not_ready`` with a ``reason``
while there are none or while the service drains before it stops (SIGTERM
with ``--drain-seconds``): a load balancer stops sending new requests, and
those it still sends are answered.
"""
from typing import NamedTuple

from ercot_fast import timeutil

SERVICE = "ercot_price_service"
SYNTHETIC_LABEL = "synthetic demo data, not real ERCOT prices"
HEALTHY = "healthy"
DEGRADED = "degraded"
NO_DATA = "no_data"
# problem codes
SKIPPED_FILES = "skipped_files"
RELOAD_FAILED = "reload_failed"
RELOAD_REFUSED = "reload_refused"
STALE_DATA = "stale_data"
# readiness
READY = "ready"
NOT_READY = "not_ready"
DRAINING_REASON = "draining: the service is stopping"
NO_DATA_REASON = (
    "no prices loaded from the data directory; the service log says why "
    "(point --data-dir at the price files, or add them and reload with SIGHUP)"
)


class Health(NamedTuple):
    serving: bool  # False: the transport answers 503 / UNAVAILABLE
    body: dict


def problem(code, details):
    return {"problem": code, "details": details}


def check(store, problems=(), stale_after=None, now_ms=None):
    """The health of a service serving ``store``; ``problems``: the master's;
    ``stale_after``: {data set: seconds} (empty or None: off)."""
    now = timeutil.now_ms() if now_ms is None else now_ms
    body = {"status": HEALTHY, "service": SERVICE, "timestamp": timeutil.format_instant(now - now % 1000)}
    serving = store.total_rows > 0
    found = list(problems) + _store_problems(store, stale_after or {}, now)
    if not serving:
        body["status"] = NO_DATA
        body["details"] = "no prices were loaded; the service log says why (point --data-dir at the price files)"
    elif found:
        body["status"] = DEGRADED
    if found:
        body["problems"] = found
    if store.synthetic:
        body["data"] = SYNTHETIC_LABEL
    return Health(serving, body)


def _store_problems(store, stale_after, now):
    found = []
    if store.skipped_files:
        shown = ", ".join(store.skipped_files[:5]) + (" ..." if len(store.skipped_files) > 5 else "")
        found.append(
            problem(
                SKIPPED_FILES,
                f"{len(store.skipped_files)} unreadable file(s) skipped at load: {shown}; "
                "replace them and reload (SIGHUP); the service log has the errors",
            )
        )
    for name, seconds in sorted(stale_after.items()):
        dataset = store.datasets[name]
        newest = int(dataset.timestamps[-1]) + dataset.interval_ms if len(dataset) else None
        if newest is None or now - newest > seconds * 1000:
            since = "has no data" if newest is None else f"ends at {timeutil.format_instant(newest)}"
            found.append(
                problem(STALE_DATA, f"{name} {since}, older than --stale-after ({seconds} s); ingest newer reports and reload")
            )
    return found


def readiness(store, draining=False):
    """Whether a service serving ``store`` should get traffic: Health(ready, body)."""
    if draining:
        return Health(False, {"status": NOT_READY, "reason": DRAINING_REASON})
    if store.total_rows == 0:
        return Health(False, {"status": NOT_READY, "reason": NO_DATA_REASON})
    return Health(True, {"status": READY})
