"""Every error class of the project.

Each carries a short ``message`` and ``details`` that tell the user what to
change. Query errors never name a transport: ``about`` says what the error
concerns (``SETTLEMENT_POINTS``, ``TOO_LARGE``), and each transport adds its
own hint for it (an HTTP route, a Flight action or ticket).
"""

# what a QueryError is about, for the transports' hints
SETTLEMENT_POINTS = "settlement_points"
TOO_LARGE = "too_large"


class ErcotFastError(Exception):
    """Base class of the project's own errors."""

    def __init__(self, message, details=""):
        super().__init__(message)
        self.message = message
        self.details = details


class QueryError(ErcotFastError, ValueError):
    """A query is malformed or asks for something that does not exist (HTTP 400)."""

    def __init__(self, message, details="", about=None):
        super().__init__(message, details)
        self.about = about


class RangeTooLargeError(QueryError):
    """A query's date range is over the configured maximum (HTTP 400)."""

    def __init__(self, message, details=""):
        super().__init__(message, details, about=TOO_LARGE)


class ResponseTooLargeError(ErcotFastError):
    """An HTTP answer over the configured size limit (HTTP 413)."""


class RequestTimeoutError(ErcotFastError):
    """An HTTP answer still computing when the request time limit ran out (HTTP 503)."""


class NotFoundError(ErcotFastError, KeyError):
    """A Flight descriptor or action that does not exist (gRPC NOT_FOUND)."""

    def __str__(self):  # KeyError would quote the message
        return self.message


class KernelInputError(ErcotFastError, ValueError):
    """A kernel was handed arrays that break its preconditions (a programming error)."""


class DataLoadError(ErcotFastError, OSError):
    """A data directory cannot be read at all."""


class IngestError(ErcotFastError):
    """An ingest run that cannot start (a missing input, a locked data directory)."""


class FetchError(ErcotFastError):
    """A listing or download of ERCOT's reports that failed (tried again by the next run), or a fetch
    that cannot start (another holds the data directory). Never carries a credential."""


class ChildStartError(ErcotFastError, RuntimeError):
    """A supervised child process (the Flight server) could not start, e.g. its port is taken."""


class SqlError(ErcotFastError):
    """A SQL query that cannot run: malformed, not a SELECT, or refused (gRPC INVALID_ARGUMENT)."""


class SqlLimitError(SqlError):
    """A SQL query over the result-size limit (INVALID_ARGUMENT)."""


class SqlTimeoutError(SqlLimitError):
    """A SQL query that ran past the time limit and was stopped (gRPC TIMED_OUT)."""


class UnimplementedError(ErcotFastError, NotImplementedError):
    """A request the service does not implement, such as a Flight SQL command it does not answer (UNIMPLEMENTED)."""
