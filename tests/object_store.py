"""A real S3 API server for the tests: moto's server mode (`moto_server`, from
the test extra), on 127.0.0.1 and a free port, always stopped. Not a mocked
client: the service and ingest talk HTTP to it through pyarrow's S3 client,
as they would to AWS or MinIO."""
import os
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pyarrow.fs as pafs

from serving import free_port

MOTO_SERVER = str(Path(sys.executable).parent / "moto_server")
CREDENTIALS = {"AWS_ACCESS_KEY_ID": "test-access-key", "AWS_SECRET_ACCESS_KEY": "test-secret-key", "AWS_REGION": "us-east-1"}


class S3Server:
    """``with S3Server() as s3:``; ``s3.endpoint`` for --s3-endpoint, ``s3.env``
    for a child's environment, ``s3.filesystem`` to put and list objects."""

    def __init__(self):
        self.port = free_port()
        self.endpoint = f"http://127.0.0.1:{self.port}"
        self.env = dict(CREDENTIALS)
        self.proc = None

    def __enter__(self):
        self.proc = subprocess.Popen(
            [MOTO_SERVER, "-H", "127.0.0.1", "-p", str(self.port)],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env={**os.environ, **self.env},
        )
        deadline = time.monotonic() + 30
        while True:
            try:
                urllib.request.urlopen(self.endpoint + "/", timeout=2).read()
                break
            except OSError:
                if self.proc.poll() is not None or time.monotonic() > deadline:
                    self.__exit__()
                    raise AssertionError(f"moto_server did not start on {self.endpoint}")
                time.sleep(0.1)
        self.filesystem = pafs.S3FileSystem(
            access_key=self.env["AWS_ACCESS_KEY_ID"], secret_key=self.env["AWS_SECRET_ACCESS_KEY"],
            endpoint_override=f"127.0.0.1:{self.port}", scheme="http", region="us-east-1", allow_bucket_creation=True,
        )
        return self

    def __exit__(self, *exc_info):
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()

    def bucket(self, name):
        self.filesystem.create_dir(name)
        return name

    def upload(self, folder, prefix):
        """Copy every file below ``folder`` to ``prefix`` (bucket/key-prefix)."""
        for path in sorted(Path(folder).rglob("*")):
            if path.is_file():
                with self.filesystem.open_output_stream(f"{prefix}/{path.relative_to(folder).as_posix()}") as out:
                    out.write(path.read_bytes())

    def keys(self, prefix):
        """Every object below ``prefix``, as paths relative to it."""
        infos = self.filesystem.get_file_info(pafs.FileSelector(prefix, recursive=True, allow_not_found=True))
        return sorted(i.path[len(prefix) + 1:] for i in infos if i.type == pafs.FileType.File)
