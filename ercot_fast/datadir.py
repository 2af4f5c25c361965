"""Where a data directory lives: a local folder, or a prefix in an object store
(``s3://bucket/prefix``, ``gs://bucket/prefix``) through ``pyarrow.fs``. Both
are read the same way, so a layout loads into the same arrays (and ETags)
wherever it is kept.

Writes are whole: a local file goes through ``files.write_atomically``; an
object is one upload, which a store shows to readers only once it completed,
so nothing temporary is left behind in a bucket.

S3's credentials and region come from the standard AWS environment
(``AWS_ACCESS_KEY_ID``, ``AWS_SECRET_ACCESS_KEY``, ``AWS_SESSION_TOKEN``,
``AWS_REGION``, ``AWS_PROFILE``, an instance role); ``endpoint`` (``--s3-endpoint``)
points at an S3-compatible store such as MinIO.
"""
import os
from pathlib import Path
from typing import NamedTuple

import pyarrow.fs as pafs
import pyarrow.parquet as pq

from ercot_fast.errors import DataLoadError
from ercot_fast.files import write_atomically

REMOTE_SCHEMES = ("s3", "gs", "gcs")
_TIMEOUTS = {"connect_timeout": 5.0, "request_timeout": 30.0}


class Entry(NamedTuple):
    relative: str  # path below the data directory, with /
    size: int
    mtime_ns: int  # a local file's modification time, an object's LastModified


def is_remote(location):
    return str(location).partition("://")[0].lower() in REMOTE_SCHEMES and "://" in str(location)


def open_data_dir(location, endpoint=None):
    """The DataDir of a folder path or an ``s3://``/``gs://`` URI."""
    if isinstance(location, DataDir):
        return location
    location = str(location)
    if not is_remote(location):
        return DataDir(location, pafs.LocalFileSystem(), str(Path(location).absolute()), local=True)
    scheme, _, rest = location.partition("://")
    bucket, _, prefix = rest.partition("/")
    prefix = prefix.strip("/")
    if not bucket:
        raise DataLoadError(f"data directory {location!r} names no bucket", f"write it as {scheme}://bucket/prefix")
    if scheme.lower() == "s3":
        filesystem = _s3(endpoint)
    else:
        try:
            filesystem = pafs.GcsFileSystem(retry_time_limit=_TIMEOUTS["request_timeout"])
        except (ImportError, AttributeError) as exc:
            raise DataLoadError(f"cannot open {location}: this pyarrow has no GCS support ({exc})",
                                "install a pyarrow wheel built with GCS, or use s3://") from None
    return DataDir(location, filesystem, f"{bucket}/{prefix}".rstrip("/"), local=False, bucket=bucket)


def _s3(endpoint):
    options = dict(_TIMEOUTS, retry_strategy=pafs.AwsStandardS3RetryStrategy(max_attempts=3))
    region = os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION")
    if endpoint:
        scheme, sep, host = endpoint.partition("://")
        if not sep:
            scheme, host = "https", endpoint
        if scheme not in ("http", "https") or not host.strip("/"):
            raise DataLoadError(f"--s3-endpoint {endpoint!r} is not a URL", "give it as http://host:9000 or https://host")
        options.update(endpoint_override=host.strip("/"), scheme=scheme, region=region or "us-east-1")
    elif region:
        options["region"] = region
    return pafs.S3FileSystem(**options)


class DataDir:
    """A data directory: list, read and write its files by relative path."""

    def __init__(self, location, filesystem, root, local, bucket=None):
        self.location = location  # as the operator wrote it, for messages
        self.filesystem = filesystem
        self.root = root
        self.local = local
        self._bucket = bucket

    def __str__(self):
        return self.location

    def path(self, relative):
        """The filesystem's path of a file (a local path, or bucket/key)."""
        return f"{self.root}/{relative}"

    def entries(self, below=""):
        """Every file below the directory (or its subfolder ``below``, ending
        in /), hidden ones (``.name`` anywhere in
        the path: an ingest's lock and temporaries, ``.allow-shrink``) left
        out, in sorted path order. Raises DataLoadError when the directory
        itself is unusable (missing, unreadable, the store unreachable)."""
        self.check()
        try:
            infos = self.filesystem.get_file_info(
                pafs.FileSelector(self.path(below).rstrip("/"), recursive=True, allow_not_found=True))
        except OSError as exc:
            raise self._unusable(exc) from None
        found = []
        for info in infos:
            if info.type != pafs.FileType.File:
                continue
            relative = info.path[len(self.root):].lstrip("/")
            if any(part.startswith(".") for part in relative.split("/")):
                continue
            found.append(Entry(relative, info.size, info.mtime_ns or 0))
        return sorted(found)

    def check(self):
        """Raise DataLoadError unless the folder (the bucket) exists and can be read."""
        where = self.root if self.local else self._bucket
        try:
            kind = self.filesystem.get_file_info(where).type
        except OSError as exc:
            raise self._unusable(exc) from None
        wanted = pafs.FileType.Directory
        if kind != wanted:
            what = "folder" if self.local else "bucket"
            raise DataLoadError(
                f"data directory {self.location!r}: the {what} {where!r} does not exist",
                "pass --data-dir (or DATA_DIR) pointing at a folder or an s3://bucket/prefix with flattened/, "
                "combined/ or ercot_fast/ files",
            )

    def _unusable(self, exc):
        message = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        fix = ("check that it is mounted and readable" if self.local else
               "check --s3-endpoint, the AWS_* credentials and region, and that the bucket exists")
        return DataLoadError(f"data directory {self.location!r} cannot be read: {message}", fix)

    def read_table(self, relative, columns=None):
        """A Parquet file's table (raises whatever a corrupt file makes pyarrow raise)."""
        return pq.read_table(self.path(relative), columns=columns, filesystem=self.filesystem)

    def exists(self, relative):
        return self.filesystem.get_file_info(self.path(relative)).type == pafs.FileType.File

    def write(self, relative, data):
        """Write a whole file: readers see the old one or the new one."""
        if self.local:
            path = Path(self.path(relative))
            path.parent.mkdir(parents=True, exist_ok=True)
            write_atomically(path, data)
            return
        with self.filesystem.open_output_stream(self.path(relative)) as stream:
            stream.write(data)

    def move(self, relative, new_relative):
        if self.local:
            os.replace(self.path(relative), self.path(new_relative))
        else:
            self.filesystem.move(self.path(relative), self.path(new_relative))

    def delete(self, relative):
        self.filesystem.delete_file(self.path(relative))
