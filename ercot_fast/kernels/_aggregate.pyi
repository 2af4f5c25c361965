import numpy as np
import numpy.typing as npt
import pyarrow as pa

STATS: tuple[str, ...]

def aggregate(
    timestamps: npt.NDArray[np.int64],
    edges: npt.NDArray[np.int64],
    column: pa.Array,
    stat: str,
    mask: npt.NDArray[np.bool_] | npt.NDArray[np.uint8] | None = None,
) -> npt.NDArray[np.float64]: ...
