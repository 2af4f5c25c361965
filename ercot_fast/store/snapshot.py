"""A loaded store as files: one uncompressed Arrow IPC file per data set and a
small JSON of what the store knows about itself, written once and memory-mapped
by every process that serves it.

Mapped, the arrays are views of the operating system's page cache: N workers
and the Flight child hold one copy of the prices, whichever process mapped
them first, and a process maps a new store by opening files, not by decoding
Parquet.
"""
import json
import shutil
from pathlib import Path

import numpy as np
import pyarrow as pa

from ercot_fast.datasets import DATASETS, INTERVAL_MS
from ercot_fast.files import write_atomically
from ercot_fast.store.model import Dataset, Store

_TIME = "interval_start"  # int64 ms since the epoch, UTC
_ABOUT = "store.json"


def write(store, directory):
    """Write ``store`` into the new folder ``directory``; returns its path.
    A write that fails (a full disk) leaves no folder behind."""
    directory = Path(directory)
    directory.mkdir(parents=True)
    try:
        _write_files(store, directory)
    except BaseException:
        shutil.rmtree(directory, ignore_errors=True)
        raise
    return directory


def _write_files(store, directory):
    for name in DATASETS:
        dataset = store.datasets[name]
        arrays = [pa.array(dataset.timestamps, pa.int64())] + list(dataset.columns.values())
        names = [_TIME] + list(dataset.columns)
        batch = pa.RecordBatch.from_arrays([_contiguous(a) for a in arrays], names=names)
        with pa.OSFile(str(directory / f"{name}.arrow"), "wb") as sink:
            with pa.ipc.new_file(sink, batch.schema) as writer:
                writer.write_batch(batch)
            # NOTE: no fsync: a snapshot lives as long as its master (after a
            # crash the folder is an orphan, removed), and forcing gigabytes to
            # disk would only hold up the start
    about = {
        "data_dir": store.data_dir,
        "synthetic": store.synthetic,
        "files_loaded": store.files_loaded,
        "load_seconds": store.load_seconds,
        "version": store.version,
        "skipped_files": list(store.skipped_files),
    }
    write_atomically(directory / _ABOUT, json.dumps(about).encode())


def open_store(directory):
    """The Store written in ``directory``, its arrays mapped, not read."""
    directory = Path(directory)
    about = json.loads((directory / _ABOUT).read_text())
    datasets = {}
    for name in DATASETS:
        with pa.memory_map(str(directory / f"{name}.arrow")) as source:
            batch = pa.ipc.open_file(source).get_batch(0)
        timestamps = np.frombuffer(batch.column(0).buffers()[1], dtype=np.int64, count=batch.num_rows)
        columns = {field.name: batch.column(i) for i, field in enumerate(batch.schema) if i}
        datasets[name] = Dataset(name, INTERVAL_MS[name], timestamps, columns)
    return Store(
        datasets,
        about["data_dir"],
        about["synthetic"],
        about["files_loaded"],
        about["load_seconds"],
        about["version"],
        tuple(about["skipped_files"]),
    )


def _contiguous(array):
    """A slice of a larger array as an array of its own (offset 0)."""
    return pa.concat_arrays([array]) if array.offset else array
