"""ercot_fast: ERCOT electricity market prices, served fast.

Data flows one way: files -> store (sorted UTC int64 + float64 columns) ->
query (slice, pick) -> writer (JSON / Arrow) -> transport (Falcon, Flight).
"""

__version__ = "0.1.0"
