"""What every action connector receives and promises."""

from __future__ import annotations

from typing import Any, Protocol

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
