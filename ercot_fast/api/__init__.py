"""The HTTP JSON API (API.md): ``app`` assembles it, ``resources`` answer the
routes through Falcon, ``fastpath`` answers repeated polls before Falcon,
``seam`` is the one WSGI layer every request passes (CORS, and later auth,
metrics, access logs), ``response_cache`` remembers rendered answers."""
