"""Who may read prices, and how often: API keys (``access.keys``) and the
token buckets of the rate limit (``access.limits``), shared by the HTTP API
and the Flight server."""
