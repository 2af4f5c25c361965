"""Error classes shared by the kernels, their pure-Python twins and the query layer.

Every error carries a short message and ``details`` that tell the user what to
change; the transports turn them into HTTP 400 bodies or Flight
INVALID_ARGUMENT statuses.
"""


class ErcotFastError(Exception):
    """Base class of the project's own errors."""

    def __init__(self, message, details=""):
        super().__init__(message)
        self.message = message
        self.details = details


class QueryError(ErcotFastError, ValueError):
    """A query is malformed or asks for something that does not exist (HTTP 400)."""


class RangeTooLargeError(QueryError):
    """A query's date range is over the configured maximum (HTTP 400)."""


class KernelInputError(ErcotFastError, ValueError):
    """A kernel was handed arrays that break its preconditions (a programming error)."""


class DataLoadError(ErcotFastError, OSError):
    """A data directory cannot be read at all."""
