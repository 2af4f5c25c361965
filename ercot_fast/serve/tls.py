"""HTTPS under gunicorn: one SSL context per worker, not one per connection
(and the context of the live-price stream's child, ``server_context``).

gunicorn builds a new ``ssl.SSLContext`` for every connection it accepts
(the certificate chain and key read and parsed again): about 2.7 ms of CPU
before the handshake, which is most of a request for a client that opens a
connection per request (and with the sync worker, every client does).
``ssl_context`` is gunicorn's hook of that name: it builds the context once
per process, and again when the certificate or key file changes, so a
renewed certificate serves from the next connection on without a restart.
A renewal caught half-written (or broken) keeps the context loaded before.
"""
import logging
import os
import ssl

log = logging.getLogger(__name__)

_loaded = [None, None]  # (the files' stamp, the context built from them)


def ssl_context(conf, default_ssl_context_factory):
    """gunicorn's ``ssl_context`` hook: the context of this process."""
    stamp = (_stamp(conf.certfile), _stamp(conf.keyfile))
    if stamp != _loaded[0]:
        try:
            _loaded[1] = default_ssl_context_factory()
        except (OSError, ssl.SSLError) as exc:
            if _loaded[1] is None:
                raise
            log.error("TLS: %s and %s changed but do not load (%s): serving the certificate loaded before",
                      conf.certfile, conf.keyfile, exc)
        _loaded[0] = stamp
    return _loaded[1]


def _stamp(path):
    try:
        status = os.stat(path)
    except OSError:
        return None
    return status.st_ino, status.st_size, status.st_mtime_ns


def server_context(cert, key):
    """A server's context of ``cert`` and ``key``, for a child serving HTTPS
    outside gunicorn (the live-price stream)."""
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert, key)
    return context
