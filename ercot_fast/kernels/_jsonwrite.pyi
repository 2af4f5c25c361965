from collections.abc import Sequence

import numpy as np
import numpy.typing as npt
import pyarrow as pa

def write_prices(
    timestamps: npt.NDArray[np.int64],
    utc_offsets: npt.NDArray[np.int32] | None,
    names: Sequence[str],
    columns: Sequence[pa.Array],
) -> bytes: ...

class PriceTable:
    timestamps: npt.NDArray[np.int64]
    names: tuple[str, ...]
    def __init__(
        self, timestamps: npt.NDArray[np.int64], names: Sequence[str], columns: Sequence[pa.Array]
    ) -> None: ...
    def __len__(self) -> int: ...
    def write(
        self, lo: int, hi: int, column_indices: Sequence[int], utc_offsets: npt.NDArray[np.int32] | None = None
    ) -> bytes: ...
