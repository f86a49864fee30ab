"""The generic HTTP action: POST the parameters as JSON, with an Idempotency-Key header."""

from __future__ import annotations

from typing import Any

import httpx

from connectors.actions.base import EffectRequest
from connectors.errors import (
    ClientError,
    Conflict,
    NotConfigured,
    RateLimited,
    ServerError,
    TimeoutError_,
    TransportError,
)

IDEMPOTENCY_HEADER = "Idempotency-Key"


class HttpActionConnector:
    name = "http"

    def __init__(self, client: httpx.AsyncClient) -> None:
        self._client = client

    async def perform(self, request: EffectRequest) -> dict[str, Any]:
        if not request.target:
            raise NotConfigured(
                f"action {request.action!r} uses the http connector but has no `target` URL in its manifest"
            )
        body = {"action": request.action, "amount": request.amount, **request.params}
        try:
            response = await self._client.post(
                request.target, json=body, headers={IDEMPOTENCY_HEADER: request.idempotency_key}
            )
        except httpx.TimeoutException as exc:
            raise TimeoutError_(f"POST {request.target} timed out") from exc
        except httpx.TransportError as exc:
            raise TransportError(f"POST {request.target} failed: {type(exc).__name__}") from exc
        return _result_of(response)


def _result_of(response: httpx.Response) -> dict[str, Any]:
    status = response.status_code
    where = f"{response.request.method} {response.request.url}"
    if status == 409:
        raise Conflict(f"{where} answered 409: the key was used with a different request")
    if status == 429:
        raise RateLimited(f"{where} answered 429", retry_after=_retry_after(response))
    if 400 <= status < 500:
        raise ClientError(f"{where} answered {status}: {response.text[:200]}")
    if status >= 500:
        raise ServerError(f"{where} answered {status}")
    try:
        payload = response.json()
    except ValueError:
        payload = {"body": response.text[:1000]}
    return {"status": status, "body": payload}


def _retry_after(response: httpx.Response) -> float | None:
    value = response.headers.get("Retry-After")
    try:
        return float(value) if value is not None else None
    except ValueError:
        return None
