"""The generic HTTP action: POST the parameters as JSON, with an Idempotency-Key header."""

from __future__ import annotations

from typing import Any

import httpx

from connectors.actions.base import EffectRequest
from connectors.breaker import BreakerSnapshot
from connectors.errors import NotConfigured
from connectors.http_base import IDEMPOTENCY_HEADER, ResilientHttp

__all__ = ["IDEMPOTENCY_HEADER", "HttpActionConnector"]

BODY_LIMIT = 1000


class HttpActionConnector:
    name = "http"

    def __init__(self, client: httpx.AsyncClient | None = None, *, http: ResilientHttp | None = None) -> None:
        """Borrow `client` (its owner closes it), or take a ready ResilientHttp (tests, tuning)."""
        self._http = http or ResilientHttp(self.name, client=client)

    def breaker_state(self) -> BreakerSnapshot:
        return self._http.breaker_state()

    async def aclose(self) -> None:
        await self._http.aclose()

    async def perform(self, request: EffectRequest) -> dict[str, Any]:
        if not request.target:
            raise NotConfigured(
                f"action {request.action!r} uses the http connector but has no `target` URL in its manifest"
            )
        body = {"action": request.action, "amount": request.amount, **request.params}
        response = await self._http.request(
            "POST", request.target, json=body, idempotency_key=request.idempotency_key
        )
        return {"status": response.status_code, "body": _payload_of(response)}


def _payload_of(response: httpx.Response) -> Any:
    try:
        return response.json()
    except ValueError:
        return {"body": response.text[:BODY_LIMIT]}
