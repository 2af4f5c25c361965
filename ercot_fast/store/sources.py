"""Where the price files of a data directory come from: the files below a
local folder, each with its kind and period as ``datasets`` names them."""
import logging
from pathlib import Path
from typing import NamedTuple

import pyarrow.parquet as pq

from ercot_fast import datasets
from ercot_fast.errors import DataLoadError

log = logging.getLogger(__name__)


class PriceFile(NamedTuple):
    relative: str  # path below the data directory, with /
    kind: datasets.FileKind
    period: tuple  # (year,) or (year, month), from the file name
    path: Path

    def read(self):
        """The file's Arrow table (raises whatever a corrupt file makes pyarrow raise)."""
        return pq.read_table(self.path)


def price_files(data_dir):
    """Every price file below ``data_dir``, in sorted path order; other files
    are logged and ignored. Raises DataLoadError when the folder is unusable."""
    root = Path(data_dir)
    if not root.is_dir():
        raise DataLoadError(
            f"data directory {str(root)!r} does not exist",
            "pass --data-dir (or DATA_DIR) pointing at a folder with flattened/ or combined/ files",
        )
    found = []
    for path in sorted(p for p in root.rglob("*") if p.is_file()):
        relative = path.relative_to(root).as_posix()
        if any(part.startswith(".") for part in path.relative_to(root).parts):
            continue  # hidden: an ingest's lock and temporaries, .allow-shrink
        matched = datasets.match_file(relative)
        if matched is None:
            log.info("ignored unknown file %s", relative)
            continue
        found.append(PriceFile(relative, *matched, path))
    return found
