"""Crash-safe file writes, for every file the project writes (ingested
partitions, demo data, reports)."""
import os
from pathlib import Path


def write_atomically(path, data):
    """Write ``data`` to ``path`` so that a crash at any moment leaves the old
    file or the new one: temporary file, flush, fsync, rename, fsync the folder."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        with open(tmp, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    directory = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(directory)
    finally:
        os.close(directory)
