"""A notification webhook: a JSON POST, HMAC-SHA256-signed with the approver's secret.

The receiver checks `X-Aios-Signature: sha256=<hex>` over `<timestamp>.<body>` with the
secret `aios approvers show NAME --secret` prints; `Idempotency-Key` is the effect key, the
same on every retry, so a receiver can drop a duplicate a lost reply caused.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import time
from typing import Any

import httpx

from connectors.errors import (
    ClientError,
    ConnectFailed,
    RateLimited,
    ServerError,
    TimeoutError_,
    TransportError,
)


def signature(secret: bytes, timestamp: str, body: bytes) -> str:
    return "sha256=" + hmac.new(secret, timestamp.encode() + b"." + body, hashlib.sha256).hexdigest()


async def post(
    http: httpx.AsyncClient, url: str, payload: dict[str, Any], *, secret: bytes, idempotency_key: str
) -> dict[str, Any]:
    body = json.dumps(payload, separators=(",", ":"), default=str).encode()
    timestamp = str(int(time.time()))
    headers = {
        "Content-Type": "application/json",
        "X-Aios-Timestamp": timestamp,
        "X-Aios-Signature": signature(secret, timestamp, body),
        "Idempotency-Key": idempotency_key,
    }
    try:
        response = await http.post(url, content=body, headers=headers)
    except httpx.ConnectError as error:
        raise ConnectFailed(f"webhook {url}: {error}") from error
    except httpx.TimeoutException as error:
        raise TimeoutError_(f"webhook {url}: timed out") from error
    except httpx.TransportError as error:
        raise TransportError(f"webhook {url}: {error}") from error
    status = response.status_code
    if status == 429:
        raise RateLimited(f"webhook {url}: 429", status=status)
    if status >= 500:
        raise ServerError(f"webhook {url}: {status}", status=status)
    if status >= 400:
        raise ClientError(f"webhook {url}: {status} {response.text[:200]}", status=status)
    return {"status": status}
