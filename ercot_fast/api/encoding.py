"""Response compression: the content coding an ``Accept-Encoding`` header
asks for, and the coder. Bodies of at least ``MIN_BYTES`` are compressed
(once: the response cache keeps the result beside the plain body).

zstd (``zstandard``) and br (``brotli``) are preferred to gzip at equal
q-values: smaller, and faster to make and to decode. Every coder runs at its
fastest level: an answer that is not cached yet pays the compression on top
of the rendering, so it must stay cheap (measured on the 1.24 MB analyst pull,
rendered in 1.7 ms: zstd 1 3.7 ms for 34% of the size, br 1 6.9 ms for 35%,
gzip 1 15 ms for 39%; gzip 6 would take 130 ms for 33%; bench/README.md).
"""
import gzip

import brotli
import zstandard

MIN_BYTES = 1024  # below this, headers and framing outweigh the saving
#: supported codings, the server's preference first -> compress(bytes) -> bytes
CODERS = {
    "zstd": zstandard.ZstdCompressor(level=1).compress,
    "br": lambda body: brotli.compress(body, quality=1),
    "gzip": lambda body: gzip.compress(body, compresslevel=1, mtime=0),
}
_PREFERENCE = {name: rank for rank, name in enumerate(CODERS)}


def negotiate(accept_encoding):
    """The coding to use for ``accept_encoding`` (a header value or None):
    the supported one of the highest q-value (ties: zstd, br, gzip), or None
    for the plain body. ``*`` stands for every coding it does not name;
    ``q=0`` refuses one."""
    if not accept_encoding:
        return None
    weights = {}
    for item in accept_encoding.split(","):
        name, _, params = item.strip().partition(";")
        name = name.strip().lower()
        weight = 1.0
        for param in params.split(";"):
            key, _, value = param.strip().partition("=")
            if key.strip().lower() == "q":
                try:
                    weight = float(value)
                except ValueError:
                    weight = 0.0
        if name == "x-gzip":
            name = "gzip"
        weights[name] = weight
    star = weights.get("*")
    scored = [(weights.get(name, star) or 0.0, -_PREFERENCE[name], name) for name in CODERS]
    weight, _, name = max(scored)
    return name if weight > 0 else None
