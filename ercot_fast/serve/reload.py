"""A reload's load, and when it may replace the store being served: never by
accident with less. A new load that is empty, lacks a data set or a series
served now, or holds fewer than a share of a data set's rows is refused
unless shrinking is allowed (``--allow-shrink``, or ``DATA_DIR/.allow-shrink``
for one reload). ``load_and_write`` runs in a child of the master
(``serve.supervisor.ChildCall``): the load's memory, or a crash in a
corrupt file's decoder, never reaches the master.

``listing_digest`` is what ``--reload-interval`` compares: the price files'
paths, sizes and modification times (an object's LastModified), so a file
added, changed or removed calls for a reload; hidden files (an ingest's
temporaries, ``.allow-shrink``) and unknown ones do not."""
import hashlib
import logging
import time

from ercot_fast.store import snapshot, sources
from ercot_fast.store.load import load_store

log = logging.getLogger(__name__)

ALLOW_SHRINK_ONCE = ".allow-shrink"


def shrinkage(current, fresh, min_fraction):
    """Why serving ``fresh`` instead of ``current`` would shrink the service
    (empty when it would not)."""
    if fresh.total_rows == 0:
        return ["the new load holds no prices (is the data directory mounted and complete?)"]
    reasons = []
    for name, served in current.datasets.items():
        new = fresh.datasets[name]
        if len(served) and not len(new):
            reasons.append(f"{name} would have no rows (serves {len(served)})")
        elif len(new) < min_fraction * len(served):
            reasons.append(f"{name} would have {len(new)} rows, under {min_fraction:.0%} of the {len(served)} served")
        lost = sorted(set(served.columns) - set(new.columns))
        if lost:
            reasons.append(f"{name} would lose {len(lost)} series: {', '.join(lost[:10])}{' ...' if len(lost) > 10 else ''}")
    return reasons


def shrink_allowed_once(data_dir):
    """True when the operator allowed this one reload to shrink the service;
    the marker is removed when it can be (a read-only data directory keeps it,
    and it goes on allowing shrinks until removed: logged)."""
    if not data_dir.exists(ALLOW_SHRINK_ONCE):
        return False
    try:
        data_dir.delete(ALLOW_SHRINK_ONCE)
    except OSError as exc:
        log.warning("%s/%s allows this reload to shrink the service but cannot be removed (%s): remove it by hand",
                    data_dir, ALLOW_SHRINK_ONCE, exc)
    return True


def listing_digest(data_dir):
    """A digest of the price files below ``data_dir`` (a ``datadir.DataDir``)
    as a reload would find them."""
    return hashlib.sha256(repr(sources.listing(data_dir)).encode()).hexdigest()


def load_and_write(data_dir, current, min_fraction, allow_shrink, folder):
    """Load ``data_dir``; unless that shrinks ``current`` by accident, write it
    as a snapshot into ``folder``. Returns {"published": bool, "reasons": [...],
    "seconds": ..., "listing": the listing digest taken before loading}:
    ``reasons`` why it shrinks (refused when not published)."""
    started = time.monotonic()
    listing = listing_digest(data_dir)
    fresh = load_store(data_dir)
    reasons = shrinkage(current, fresh, min_fraction)
    published = not reasons or allow_shrink or shrink_allowed_once(data_dir)
    if published:
        snapshot.write(fresh, folder)
    return {"published": published, "reasons": reasons, "seconds": round(time.monotonic() - started, 2), "listing": listing}
