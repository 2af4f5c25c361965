"""Metrics for Prometheus: every process counts on its own, without locks
(``metrics.counters``), and ``GET /metrics`` adds up all of them, in the
Prometheus text format (``metrics.exposition``)."""
