"""SQL over the live store: its tables (``tables``) and the engine that runs
read-only queries over them within limits (``engine``)."""
