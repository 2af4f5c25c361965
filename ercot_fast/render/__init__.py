"""Answers as bytes on the wire: ``json`` (the /api/prices body) and ``arrow``
(bounded Arrow record batches for Flight)."""
