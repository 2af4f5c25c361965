"""The data sets and their names: price types, interval lengths, ancillary
products, the order of settlement points, and how their files are named (the
layout ``ercot-fast ingest`` writes and the older pipeline's), for the store
and the ingest alike."""
import re
from typing import NamedTuple

from ercot_fast import timeutil

DAY_AHEAD = "day_ahead"
REAL_TIME = "real_time"  # hourly: the means of the 15-minute intervals unless a file has hourly values
REAL_TIME_15MIN = "real_time_15min"
ANCILLARY_SERVICES = "ancillary_services"
DATASETS = (DAY_AHEAD, REAL_TIME, REAL_TIME_15MIN, ANCILLARY_SERVICES)
#: data sets of settlement point prices (the others hold ancillary products)
SETTLEMENT_POINT_DATASETS = (DAY_AHEAD, REAL_TIME, REAL_TIME_15MIN)
INTERVAL_MS = {
    DAY_AHEAD: timeutil.MS_PER_HOUR,
    REAL_TIME: timeutil.MS_PER_HOUR,
    REAL_TIME_15MIN: 15 * timeutil.MS_PER_MINUTE,
    ANCILLARY_SERVICES: timeutil.MS_PER_HOUR,
}
#: ancillary products in the contract's order (ECRS from June 2023)
AS_PRODUCTS = ("ECRS", "NSPIN", "REGDN", "REGUP", "RRS")
#: Arrow schema metadata key of files and answers holding synthetic demo prices
SYNTHETIC_KEY = b"ercot_fast.synthetic"
_FAMILIES = ("HB_", "LZ_", "DC_")


def settlement_point_order(name):
    """Sort key: hubs, load zones, DC ties, then any others; alphabetical within a family."""
    family = next((i for i, f in enumerate(_FAMILIES) if name.startswith(f)), len(_FAMILIES))
    return family, name


def ancillary_products(names):
    """Ancillary products among ``names``: the contract's order, then any others alphabetically."""
    names = set(names)
    return [p for p in AS_PRODUCTS if p in names] + sorted(names - set(AS_PRODUCTS))


# --- files ------------------------------------------------------------------

#: folder of a data directory that ``ercot-fast ingest`` writes
INGEST_DIR = "ercot_fast"
#: data sets ``ercot-fast ingest`` writes (hourly real-time is computed from 15-minute data)
INGESTED_DATASETS = (DAY_AHEAD, REAL_TIME_15MIN, ANCILLARY_SERVICES)

# families of files, highest precedence first (store.load ranks them)
INGESTED = "ingested"
FLATTENED = "flattened"
COMBINED_ANNUAL = "combined annual"
COMBINED_MONTHLY = "combined monthly"


class FileKind(NamedTuple):
    """A kind of price file: its name pattern, its family, and the data set of
    its price columns (None for combined files, whose columns say: DA_, RT_, AS_)."""

    pattern: re.Pattern
    family: str
    dataset: str | None


def partition_name(dataset, year, month):
    """The path, relative to a data directory, of one month of an ingested data set."""
    return f"{INGEST_DIR}/{dataset}/{dataset}_{year:04d}_{month:02d}.parquet"


def partition_glob(dataset):
    """The glob, relative to ``INGEST_DIR/dataset``, of an ingested data set's files."""
    return f"{dataset}_[0-9][0-9][0-9][0-9]_[0-9][0-9].parquet"


FILE_KINDS = tuple(
    FileKind(re.compile(re.escape(f"{INGEST_DIR}/{name}/{name}_") + r"(\d{4})_(\d{2})\.parquet"), INGESTED, name)
    for name in INGESTED_DATASETS
) + (
    FileKind(re.compile(r"flattened/DA_prices_(\d{4})\.parquet"), FLATTENED, DAY_AHEAD),
    FileKind(re.compile(r"flattened/RT_prices_15min_(\d{4})\.parquet"), FLATTENED, REAL_TIME_15MIN),
    FileKind(re.compile(r"flattened/RT_prices_hourly_(\d{4})\.parquet"), FLATTENED, REAL_TIME),
    FileKind(re.compile(r"flattened/AS_prices_(\d{4})\.parquet"), FLATTENED, ANCILLARY_SERVICES),
    FileKind(re.compile(r"combined/DA_AS_RT_combined_(\d{4})\.parquet"), COMBINED_ANNUAL, None),
    FileKind(
        re.compile(r"combined/monthly/DA_AS_RT_combined/DA_AS_RT_combined_(\d{4})_(\d{2})\.parquet"),
        COMBINED_MONTHLY,
        None,
    ),
)
#: prefix of a combined file's columns -> the data set they feed
COMBINED_PREFIXES = {"DA_": DAY_AHEAD, "RT_": REAL_TIME, "AS_": ANCILLARY_SERVICES}


def match_file(relative):
    """``(FileKind, period)`` of a path relative to a data directory, where
    ``period`` is ``(year,)`` or ``(year, month)`` from its name; None for a
    file that is not a price file."""
    for kind in FILE_KINDS:
        match = kind.pattern.fullmatch(relative)
        if match:
            return kind, tuple(int(g) for g in match.groups())
    return None
