"""The service's health: whether it can serve, and the body that says so, for
every transport (HTTP ``/api/health``, the Flight ``healthcheck`` action)."""
from typing import NamedTuple

from ercot_fast import timeutil

SERVICE = "ercot_price_service"
SYNTHETIC_LABEL = "synthetic demo data, not real ERCOT prices"
HEALTHY = "healthy"
NO_DATA = "no_data"


class Health(NamedTuple):
    serving: bool  # False: the transport answers 503 / UNAVAILABLE
    body: dict


def check(store):
    """The health of a service serving ``store``."""
    now = timeutil.now_ms()
    body = {"status": HEALTHY, "service": SERVICE, "timestamp": timeutil.format_instant(now - now % 1000)}
    serving = store.total_rows > 0
    if not serving:
        body["status"] = NO_DATA
        body["details"] = "no prices were loaded; the service log says why (point --data-dir at the price files)"
    if store.synthetic:
        body["data"] = SYNTHETIC_LABEL
    return Health(serving, body)
