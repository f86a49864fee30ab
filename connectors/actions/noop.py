"""An action that changes nothing: for benchmarks and plumbing tests."""

from __future__ import annotations

from typing import Any

from connectors.actions.base import EffectRequest


class NoopConnector:
    name = "noop"

    async def perform(self, request: EffectRequest) -> dict[str, Any]:
        return {"noop": True, "action": request.action}
