"""Where the price files of a data directory come from: the files below a
local folder or an object-store prefix (``datadir``), each with its kind and
period as ``datasets`` names them."""
import logging
from typing import NamedTuple

from ercot_fast import datasets
from ercot_fast.datadir import DataDir, Entry, open_data_dir

log = logging.getLogger(__name__)


class PriceFile(NamedTuple):
    relative: str  # path below the data directory, with /
    kind: datasets.FileKind
    period: tuple  # (year,) or (year, month), from the file name
    entry: Entry  # its size and modification time
    data_dir: DataDir

    def read(self):
        """The file's Arrow table (raises whatever a corrupt file makes pyarrow raise)."""
        return self.data_dir.read_table(self.relative)


def price_files(data_dir, quiet=False):
    """Every price file below ``data_dir`` (a path, URI or DataDir), in sorted
    path order; other files are logged (unless ``quiet``) and ignored. Raises
    DataLoadError when the directory is unusable."""
    data_dir = open_data_dir(data_dir)
    found = []
    for entry in data_dir.entries():
        matched = datasets.match_file(entry.relative)
        if matched is None:
            if not quiet:
                log.info("ignored unknown file %s", entry.relative)
            continue
        found.append(PriceFile(entry.relative, *matched, entry, data_dir))
    return found


def listing(data_dir):
    """What a reload would read, as (path, size, modification time) per price
    file: a change in it (a file added, changed or removed) calls for a reload."""
    return tuple(file.entry for file in price_files(data_dir, quiet=True))
