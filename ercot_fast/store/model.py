"""What the store holds once loaded: per data set a sorted, de-duplicated int64
array of interval starts (ms since the epoch, UTC) and one float64 Arrow array
per settlement point or product (null where ERCOT published no price)."""
import dataclasses

import numpy as np

from ercot_fast import datasets, kernels


@dataclasses.dataclass(frozen=True)
class Dataset:
    """One price type: sorted UTC interval starts and aligned price columns."""

    name: str
    interval_ms: int
    timestamps: np.ndarray  # int64 ms since the epoch, UTC, sorted, unique
    columns: dict  # series name -> pyarrow float64 Array, len(timestamps)
    # the JSON writer's view of the columns, built once: a kernels.PriceTable
    # and series name -> its column index there
    table: object = dataclasses.field(init=False, repr=False)
    column_index: dict = dataclasses.field(init=False, repr=False)

    def __post_init__(self):
        names = tuple(self.columns)
        object.__setattr__(self, "table", kernels.PriceTable(self.timestamps, names, [self.columns[n] for n in names]))
        object.__setattr__(self, "column_index", {name: index for index, name in enumerate(names)})

    def __len__(self):
        return len(self.timestamps)


@dataclasses.dataclass(frozen=True)
class Store:
    datasets: dict  # data set name -> Dataset
    data_dir: str
    synthetic: bool
    files_loaded: int
    load_seconds: float
    version: str  # fingerprint of the loaded prices: equal data, equal version
    skipped_files: tuple = ()  # files that could not be read, relative to data_dir
    # every settlement point of the day-ahead or real-time data, in
    # datasets.settlement_point_order
    settlement_points: tuple = dataclasses.field(init=False)
    known_settlement_points: frozenset = dataclasses.field(init=False)

    def __post_init__(self):
        names = set()
        for name in datasets.SETTLEMENT_POINT_DATASETS:
            names.update(self.datasets[name].columns)
        object.__setattr__(self, "settlement_points", tuple(sorted(names, key=datasets.settlement_point_order)))
        object.__setattr__(self, "known_settlement_points", frozenset(names))

    @property
    def total_rows(self):
        return sum(len(d) for d in self.datasets.values())
