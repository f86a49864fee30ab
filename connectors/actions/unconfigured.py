"""A stand-in for a connector whose settings are missing.

The worker starts without it, and an action that uses it fails at call time with
NotConfigured, a final error that names the settings to provide.
"""

from __future__ import annotations

from typing import Any

from connectors.actions.base import EffectRequest
from connectors.errors import NotConfigured


class UnconfiguredConnector:
    def __init__(self, name: str, *, missing: list[str], hint: str = "") -> None:
        self.name = name
        self._missing = missing
        self._hint = hint

    async def perform(self, request: EffectRequest) -> dict[str, Any]:
        variables = ", ".join(self._missing)
        raise NotConfigured(
            f"action {request.action!r} needs the {self.name} connector, which is not configured: "
            f"set {variables}{f' ({self._hint})' if self._hint else ''}"
        )
