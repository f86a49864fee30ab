"""The typed error tree every connector raises, mapped from low-level errors with `from`.

Retryable errors are worth another attempt with the same idempotency key; the others are
final. The activity layer sends them through Temporal as ApplicationErrors (application_error):
the failure's type is the class's name, non-retryable when `retryable` is False.
"""

from __future__ import annotations


class ConnectorError(Exception):
    """Base of every connector error; `status` is the service's answer code, when there was one."""

    retryable: bool = False

    def __init__(self, message: str, *, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status


class TransportError(ConnectorError):
    """The request may not have reached the service (connection refused, reset)."""

    retryable = True


class ConnectFailed(TransportError):
    """No connection could be made: nothing was sent, so repeating the request is always safe."""


class TimeoutError_(ConnectorError):
    """No answer in time: the effect may or may not have happened (outcome unknown)."""

    retryable = True


class ServerError(ConnectorError):
    """The service failed (5xx); trying again with the same key is safe."""

    retryable = True


class RateLimited(ConnectorError):
    """The service asked us to slow down (429, or 503 with Retry-After)."""

    retryable = True

    def __init__(self, message: str, *, retry_after: float | None = None, status: int | None = None) -> None:
        super().__init__(message, status=status)
        self.retry_after = retry_after


class CircuitOpen(RateLimited):
    """The connector's circuit breaker is open: the call was refused without reaching the service.

    A kind of RateLimited so that the activity layer asks Temporal to wait out the cool-down
    (`retry_after`) before the next attempt instead of spending attempts on a refusal.
    """


class ClientError(ConnectorError):
    """The request itself is wrong (4xx): repeating it cannot help."""


class Conflict(ClientError):
    """The same idempotency key was used with a different request."""


class NotConfigured(ClientError):
    """The connector lacks its configuration (URL, credentials): fix the settings."""


CONNECTOR_ERRORS: tuple[type[ConnectorError], ...] = (
    ConnectorError,
    TransportError,
    ConnectFailed,
    TimeoutError_,
    ServerError,
    RateLimited,
    CircuitOpen,
    ClientError,
    Conflict,
    NotConfigured,
)
"""Every class above, written out: a failure whose type is one of these names came from a
connector (the workflow then asks the ledger what happened). A test checks none is missing."""
