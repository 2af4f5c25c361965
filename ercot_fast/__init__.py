"""ercot_fast: ERCOT electricity market prices, served fast.

Data flows one way: files -> store (sorted UTC int64 + float64 columns) ->
query (slice, pick) -> render (JSON / Arrow) -> transport (HTTP, Flight).
"""

__version__ = "0.1.0"  # the one place the version lives (pyproject.toml reads it)
