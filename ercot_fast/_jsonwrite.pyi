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
