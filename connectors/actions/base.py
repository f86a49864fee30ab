"""What every action connector receives and promises."""

from __future__ import annotations

from typing import Any, Protocol, runtime_checkable

from pydantic import BaseModel, ConfigDict, Field


class EffectRequest(BaseModel):
    """One external effect, with the idempotency key the connector passes downstream."""

    model_config = ConfigDict(frozen=True)

    idempotency_key: str = Field(min_length=1)
    action: str
    params: dict[str, Any] = Field(default_factory=dict)
    amount: float | None = None
    target: str | None = None
    original: dict[str, Any] | None = Field(
        default=None, description="for a compensation: what the effect it undoes returned"
    )


class ActionConnector(Protocol):
    """Performs effects. Calling `perform` twice with one key must yield one effect downstream."""

    name: str

    async def perform(self, request: EffectRequest) -> dict[str, Any]: ...


@runtime_checkable
class EffectLookup(Protocol):
    """Optional: a connector that can ask the service whether an effect was applied.

    Used to resolve an effect whose outcome is unknown (a timeout after sending) without
    performing it again. `lookup` must never apply anything. It returns None when the service
    says the effect was *not* applied, the applied effect's response (in the same shape
    `perform` returns) when it was, and raises a ConnectorError when it cannot tell: a
    retryable one when the service could not answer now, a final one when this service (or
    this kind of effect) cannot be looked up at all, so only a webhook can settle it.
    """

    async def lookup(self, request: EffectRequest) -> dict[str, Any] | None: ...
