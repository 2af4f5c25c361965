"""Where rows come from: input files and folders, ZIP archives (nested too),
CSV streams cut into chunks of whole lines, and chunks of one header gathered
into batches.

ERCOT ships one small ZIP per day or per 15-minute interval, so a folder of
thousands is normal. PERF: parsing each tiny CSV alone would cost more in
per-call overhead than in parsing; chunks that share a header are joined
(header once) into batches of a few MB and parsed in one pyarrow call. Large
files are cut at line ends into chunks of BLOCK_BYTES, so memory stays bounded.
Each chunk remembers its source and first line, so a row's file and line can
be told back.
"""
import dataclasses
import io
import os
import zipfile
import zlib
from pathlib import Path

import numpy as np

from ercot_fast.ingest import formats
from ercot_fast.errors import IngestError

BLOCK_BYTES = 16 << 20
BATCH_BYTES = 8 << 20
_ZIP_MAGIC = (b"PK\x03\x04", b"PK\x05\x06")
_MAX_NESTING = 3
# What reading a file or an archive member can raise (zipfile: NotImplementedError
# for an unknown compression method, RuntimeError for an encrypted member).
_READ_ERRORS = (
    OSError, EOFError, zipfile.BadZipFile, zipfile.LargeZipFile, zlib.error, NotImplementedError, RuntimeError,
)


@dataclasses.dataclass(frozen=True)
class Input:
    path: Path
    mtime_ns: int
    size: int


def expand(paths, skip=None):
    """Every file under ``paths`` (files or folders; hidden names skipped),
    each once, in precedence order: modification time, then path. Inputs
    ingested together resolve conflicts by this order (the later wins), so the
    order they are given in never matters."""
    skip = os.path.realpath(skip) + os.sep if skip else None
    seen = set()
    found = []
    for raw in paths:
        if not os.path.exists(raw):
            raise IngestError(f"input {raw} does not exist")
        if os.path.isdir(raw):
            # PERF: a folder of thousands of ZIPs: resolve the folder once, not each file
            root = os.path.realpath(raw)
            candidates = []
            for folder, dirs, files in os.walk(root):
                dirs[:] = sorted(d for d in dirs if not d.startswith("."))
                candidates.extend(os.path.join(folder, f) for f in sorted(files) if not f.startswith("."))
        else:
            candidates = [os.path.realpath(raw)]
        for candidate in candidates:
            if candidate in seen or (skip and candidate.startswith(skip)):
                continue
            seen.add(candidate)
            stat = os.stat(candidate)
            found.append(Input(Path(candidate), stat.st_mtime_ns, stat.st_size))
    return sorted(found, key=lambda i: (i.mtime_ns, str(i.path)))


@dataclasses.dataclass
class CsvChunk:
    """Whole lines of one CSV stream (its header left out)."""

    rank: int  # precedence of its source: later sources win
    source: str  # file, or archive!member
    first_line: int  # line number of its first row in the source (header = 1)
    body: bytes  # whole lines, each ending with a newline
    lines: int

    def where(self):
        """Its source, and where in it the chunk starts unless at the top."""
        return self.source if self.first_line == 2 else f"{self.source} from line {self.first_line}"


class Reader:
    """Reads inputs in precedence order into CSV chunks, and tells ``report``
    about files it cannot use."""

    def __init__(self, report):
        self.report = report
        self.sources = []  # name of each CSV stream, by rank

    def read(self, item):
        """Yield (format, CsvChunk) for each chunk of the CSV streams in one
        input, in order; a file or member that cannot be read is reported."""
        name = str(item.path)
        try:
            with open(item.path, "rb") as f:
                if item.size <= BLOCK_BYTES:  # PERF: most files are small: one read
                    yield from self._read_bytes(f.read(), name, 0)
                elif f.peek(4)[:4] in _ZIP_MAGIC:
                    yield from self._read_zip(f, name, 0)
                else:
                    yield from self._read_stream(f, name)
        except _READ_ERRORS as exc:
            self.report.add_unreadable(name, f"{type(exc).__name__}: {exc}")

    def _read_bytes(self, data, name, depth):
        """A whole file or member in memory: a ZIP, or a CSV as one chunk."""
        if data[:4] in _ZIP_MAGIC and depth <= _MAX_NESTING:
            yield from self._read_zip(io.BytesIO(data), name, depth)
            return
        started = self._start(data, name)
        if started:
            fmt, rank, end = started
            yield from self._last_lines(fmt, rank, name, 2, data[end + 1 :])

    def _read_zip(self, fileobj, name, depth):
        with zipfile.ZipFile(fileobj) as archive:
            members = [m for m in archive.infolist() if not m.is_dir()]
            if any(m.filename == "[Content_Types].xml" for m in members):
                self.report.add_unrecognised(name, "an Excel workbook: export the sheet as CSV, then ingest the CSV")
                return
            for member in sorted(members, key=lambda m: (m.date_time, m.filename)):
                member_name = f"{name}!{member.filename}"
                try:
                    # a large archive inside an archive is unpacked in memory too
                    if member.file_size <= BLOCK_BYTES or _is_zip(archive, member):
                        yield from self._read_bytes(archive.read(member), member_name, depth + 1)
                    else:
                        with archive.open(member) as stream:
                            yield from self._read_stream(stream, member_name)
                except _READ_ERRORS as exc:
                    self.report.add_unreadable(member_name, f"{type(exc).__name__}: {exc}")

    def _start(self, block, name):
        """Recognise a CSV from its first block: (format, rank, end of the
        header line), or None after reporting why not."""
        if not block or block.isspace():
            self.report.add_unrecognised(name, "empty file")
            return None
        end = block.find(b"\n")
        end = len(block) if end < 0 else end
        fmt, why = formats.recognise(block[:end])
        if fmt is None:
            self.report.add_unrecognised(name, why)
            return None
        self.report.csv_streams += 1
        self.report.datasets[fmt.dataset].reports[fmt.report] += 1
        self.sources.append(name)
        return fmt, len(self.sources) - 1, end

    def _read_stream(self, stream, name):
        """A large CSV: recognise the header, then cut the rest into chunks of
        about BLOCK_BYTES at line ends."""
        block = stream.read(BLOCK_BYTES)
        started = self._start(block, name)
        if not started:
            return
        fmt, rank, end = started
        line = 2
        rest = block[end + 1 :]
        while more := stream.read(BLOCK_BYTES):
            data = rest + more
            cut = data.rfind(b"\n") + 1
            if cut:
                chunk = self._chunk(rank, name, line, data[:cut])
                line += chunk.lines
                yield fmt, chunk
            rest = data[cut:]
        yield from self._last_lines(fmt, rank, name, line, rest)

    def _last_lines(self, fmt, rank, name, line, rest):
        """The last chunk of a stream (a missing final newline added), unless
        it holds only blank space."""
        if rest and not rest.isspace():
            yield fmt, self._chunk(rank, name, line, rest if rest.endswith(b"\n") else rest + b"\n")

    @staticmethod
    def _chunk(rank, name, line, body):
        # PERF: numpy counts newlines in a large block twice as fast as bytes.count
        lines = body.count(b"\n") if len(body) < 1 << 16 else int(np.count_nonzero(np.frombuffer(body, np.uint8) == 10))
        return CsvChunk(rank, name, line, body, lines)


def _is_zip(archive, member):
    """Does the archive member hold a ZIP (read from its first bytes)?"""
    with archive.open(member) as stream:
        return stream.peek(4)[:4] in _ZIP_MAGIC


@dataclasses.dataclass
class Batch:
    """CSV chunks of one header, to be parsed together."""

    fmt: formats.Format
    chunks: list = dataclasses.field(default_factory=list)
    size: int = 0  # bytes of the chunks' bodies

    def data(self):
        """The chunks' lines as one buffer."""
        return self.chunks[0].body if len(self.chunks) == 1 else b"".join(c.body for c in self.chunks)


class Batcher:
    """Gathers CSV chunks of one header into batches of about BATCH_BYTES."""

    def __init__(self, batch_bytes=BATCH_BYTES):
        self.batch_bytes = batch_bytes
        self.pending = {}  # header -> Batch

    def add(self, fmt, chunk):
        """Add a chunk; return the batches that became full (its own, or none)."""
        batch = self.pending.get(fmt.header)
        if batch is None:
            batch = self.pending[fmt.header] = Batch(fmt)
        batch.chunks.append(chunk)
        batch.size += len(chunk.body)
        if batch.size >= self.batch_bytes:
            return (self.pending.pop(fmt.header),)
        return ()

    def drain(self):
        """Every batch not yet full (in the order they were started); the
        batcher is left empty."""
        batches = list(self.pending.values())
        self.pending.clear()
        return batches
