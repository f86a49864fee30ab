"""After a failed attempt the ledger never forgets that an effect may have happened."""

import pytest

from activities.actions import state_after_failure
from connectors.errors import (
    CircuitOpen,
    ClientError,
    ConnectFailed,
    ConnectorError,
    ServerError,
    TimeoutError_,
    TransportError,
)


@pytest.mark.parametrize(
    ("known", "error", "expected"),
    [
        ("pending", ConnectFailed("refused"), "pending"),
        ("unknown", ConnectFailed("refused"), "unknown"),
        ("pending", TimeoutError_("no answer"), "unknown"),
        ("pending", TransportError("reset after sending"), "unknown"),
        ("pending", ServerError("500"), "pending"),
        ("unknown", ServerError("500"), "unknown"),
        ("pending", CircuitOpen("open"), "pending"),
        ("pending", ClientError("422"), "failed"),
        ("unknown", ClientError("422"), "unknown"),
    ],
)
def test_state_after_failure(known: str, error: ConnectorError, expected: str) -> None:
    assert state_after_failure(known, error) == expected  # type: ignore[arg-type]
