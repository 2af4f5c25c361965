"""Crash-safe file writes, for every file the project writes (ingested
partitions, demo data, reports)."""
import os
from pathlib import Path


def write_atomically(path, data, durable=True):
    """Write ``data`` to ``path`` so that a crash at any moment leaves the old
    file or the new one: temporary file, flush, fsync, rename, fsync the folder.
    ``durable=False``: readers still see the old file or the new one, never a
    part, but nothing is forced to disk (a file written every second that
    matters only while the service runs)."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        with open(tmp, "wb") as f:
            f.write(data)
            if durable:
                f.flush()
                os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    if not durable:
        return
    directory = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(directory)
    finally:
        os.close(directory)
