"""The generic HTTP action: POST the parameters as JSON, with an Idempotency-Key header.

Lookup (for reconciling an effect whose outcome is unknown): `GET <target>?idempotency_key=<key>`
answers 200 with the effect's stored response when it was applied, or 404 with the JSON body
`{"error": "no effect with idempotency key <key>"}` when it was not. Any other answer (a plain
404 from a service without that endpoint, a 405, a 5xx) means "cannot tell", never "not applied".
"""

from __future__ import annotations

from typing import Any

import httpx

from connectors.actions.base import EffectRequest
from connectors.breaker import BreakerSnapshot
from connectors.errors import ClientError, NotConfigured
from connectors.http_base import IDEMPOTENCY_HEADER, ResilientHttp

__all__ = ["IDEMPOTENCY_HEADER", "HttpActionConnector"]

BODY_LIMIT = 1000
# What a lookup endpoint says (in its 404 body's `error`) when no effect has the key.
LOOKUP_NOT_FOUND = "no effect with idempotency key {key}"


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

    async def lookup(self, request: EffectRequest) -> dict[str, Any] | None:
        """Ask the target whether the effect under this key was applied; never applies it."""
        if not request.target:
            raise NotConfigured(
                f"action {request.action!r} uses the http connector but has no `target` URL to look up"
            )
        url = httpx.URL(request.target).copy_merge_params({"idempotency_key": request.idempotency_key})
        try:
            response = await self._http.request("GET", str(url))
        except ClientError as error:
            # Only the lookup endpoint's own "not found", naming the key, says "not applied"; a 404
            # from a service without that endpoint (or one echoing the URL) says nothing.
            if error.status == 404 and LOOKUP_NOT_FOUND.format(key=request.idempotency_key) in str(error):
                return None
            if error.status in (404, 405):
                raise ClientError(
                    f"{error}; the target offers no effect lookup (GET ?idempotency_key=...), "
                    "so only a webhook or the operator can settle this effect",
                    status=error.status,
                ) from error
            raise
        # The same shape `perform` returns: what a compensation reads from the original.
        return {"status": response.status_code, "body": _payload_of(response)}


def _payload_of(response: httpx.Response) -> Any:
    try:
        return response.json()
    except ValueError:
        return {"body": response.text[:BODY_LIMIT]}
