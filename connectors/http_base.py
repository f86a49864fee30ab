"""The resilient HTTP base every HTTP connector stands on.

One `ResilientHttp` per connector wraps an `httpx.AsyncClient` and adds what a call to a
third-party API needs so that it never repeats an effect and never hammers a sick service:

- low-level httpx errors and error answers mapped to the typed tree in `connectors.errors`,
  always `raise ... from exc`, with every message redacted;
- a few retries with exponential backoff and full jitter, and only where repeating cannot
  apply an effect twice: the failure is retry-safe (no connection was made, a 5xx, a 429)
  *and* the request carries an idempotency key or is a GET. Temporal's activity retry policy
  is the outer loop, so the retries here stay modest;
- `Retry-After` (seconds or an HTTP date) honoured on 429 and 503, up to a cap; a longer wait
  ends the attempts and travels on the error, so Temporal waits instead of a busy worker;
- a circuit breaker per connector, whose state `breaker_state()` shows.
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Any

import httpx

from connectors.breaker import BreakerSnapshot, CircuitBreaker
from connectors.errors import (
    CircuitOpen,
    ClientError,
    Conflict,
    ConnectFailed,
    ConnectorError,
    NotConfigured,
    RateLimited,
    ServerError,
    TimeoutError_,
    TransportError,
)
from connectors.redaction import Redactor, safe_url

log = logging.getLogger("connectors.http")

DEFAULT_TIMEOUT = httpx.Timeout(10.0, connect=5.0)
IDEMPOTENCY_HEADER = "Idempotency-Key"
# Answers that say "not now" rather than "no": repeating with the same key is safe.
RETRY_STATUSES = frozenset({429, 500, 502, 503, 504})
RETRY_AFTER_STATUSES = frozenset({429, 503})
# Methods that change nothing, so they may be repeated without an idempotency key.
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
BODY_EXCERPT = 200

Sleep = Callable[[float], Awaitable[None]]
ErrorMapper = Callable[[httpx.Response, Redactor], ConnectorError]


@dataclass(frozen=True)
class RetryPolicy:
    """Retries inside one activity attempt; keep them few, Temporal retries the activity."""

    max_attempts: int = 3  # the first try included
    base_delay: float = 0.25
    max_delay: float = 4.0
    max_retry_after: float = 10.0  # the longest server-requested wait spent inside the connector

    def backoff(self, attempt: int, rng: Callable[[], float]) -> float:
        """Full jitter: uniform in [0, base * 2^(attempt-1)], capped (AWS architecture blog)."""
        return rng() * min(self.max_delay, self.base_delay * 2.0 ** (attempt - 1))


def parse_retry_after(value: str | None, *, now: datetime | None = None) -> float | None:
    """Seconds to wait from a Retry-After header: delta-seconds or an HTTP date; None if unusable."""
    if value is None or not value.strip():
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:  # HTTP dates are GMT; an obsolete form may come without a zone
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - (now or datetime.now(UTC))).total_seconds())


def error_for_response(response: httpx.Response, redact: Redactor) -> ConnectorError:
    """The most specific error for an answer that is not a success, in the service's words."""
    status = response.status_code
    where = f"{response.request.method} {safe_url(response.request.url)} answered {status}"
    said = redact(error_message_of(response))
    if status in RETRY_AFTER_STATUSES:
        wait = parse_retry_after(response.headers.get("Retry-After"))
        if status == 429 or wait is not None:
            return RateLimited(f"{where}, slow down: {said}", retry_after=wait, status=status)
    if status >= 500:
        return ServerError(f"{where}, the service failed: {said}", status=status)
    if status == 401:
        return NotConfigured(
            f"{where}, the credentials were refused (check the API key): {said}", status=status
        )
    if status == 409:
        return Conflict(f"{where}, the key was used with a different request: {said}", status=status)
    if 300 <= status < 400:
        location = safe_url(response.request.url.join(response.headers.get("Location", "")))
        return ClientError(f"{where}: redirected to {location}; use the final URL", status=status)
    return ClientError(f"{where}: {said}", status=status)


def error_message_of(response: httpx.Response) -> str:
    """The service's own words about an error: `error.message` or `message` in JSON, else the text."""
    try:
        payload = response.json()
    except ValueError:
        return response.text[:BODY_EXCERPT]
    if isinstance(payload, dict):
        error = payload.get("error")
        if isinstance(error, dict) and isinstance(error.get("message"), str):
            return str(error["message"])[:BODY_EXCERPT]
        for value in (error, payload.get("message")):
            if isinstance(value, str):
                return value[:BODY_EXCERPT]
    return response.text[:BODY_EXCERPT]


class ResilientHttp:
    """Retries, breaker, error mapping and redaction around one connector's httpx client."""

    def __init__(
        self,
        name: str,
        *,
        client: httpx.AsyncClient | None = None,
        base_url: str = "",
        transport: httpx.AsyncBaseTransport | None = None,
        timeout: httpx.Timeout = DEFAULT_TIMEOUT,
        headers: Mapping[str, str] | None = None,
        secrets: Iterable[str | None] = (),
        retry: RetryPolicy | None = None,
        breaker: CircuitBreaker | None = None,
        error_mapper: ErrorMapper = error_for_response,
        idempotency_header: str = IDEMPOTENCY_HEADER,
        sleep: Sleep = asyncio.sleep,
        rng: Callable[[], float] = random.random,
    ) -> None:
        """`client` is borrowed: its owner closes it and its timeout applies (`base_url`, `transport`
        and `timeout` are then unused). Without one, an own client is built from those three."""
        self.name = name
        self._owns_client = client is None
        self._client = (
            client
            if client is not None
            else httpx.AsyncClient(base_url=base_url, transport=transport, timeout=timeout)
        )
        self._headers = dict(headers or {})
        # Whatever goes in the Authorization header is a secret, whether or not it was named.
        credentials = [v for k, v in self._headers.items() if k.lower() == "authorization"]
        tokens = [v.split()[-1] for v in credentials if v.split()]  # without the "Bearer " scheme
        self._redact = Redactor([*secrets, *credentials, *tokens])
        self._retry = retry or RetryPolicy()
        self._breaker = breaker or CircuitBreaker(name)
        self._error_mapper = error_mapper
        self._idempotency_header = idempotency_header
        self._sleep = sleep
        self._rng = rng

    @property
    def redact(self) -> Redactor:
        return self._redact

    def breaker_state(self) -> BreakerSnapshot:
        return self._breaker.snapshot()

    async def aclose(self) -> None:
        if self._owns_client:
            await self._client.aclose()

    async def request(
        self,
        method: str,
        url: str,
        *,
        idempotency_key: str | None = None,
        json: Any = None,
        data: Mapping[str, Any] | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> httpx.Response:
        """Send, retrying where safe; return a 2xx answer or raise a ConnectorError."""
        method = method.upper()
        all_headers = {**self._headers, **(headers or {})}
        if idempotency_key is not None:
            all_headers[self._idempotency_header] = idempotency_key
        repeatable = idempotency_key is not None or method in SAFE_METHODS
        attempt = 1
        while True:
            try:
                return await self._attempt(method, url, headers=all_headers, json=json, data=data)
            except ConnectorError as error:
                delay = self._delay_before_retry(error, attempt, repeatable=repeatable)
                if delay is None:
                    raise
                log.warning(
                    "%s: attempt %d/%d failed (%s: %s); retrying in %.2fs",
                    self.name,
                    attempt,
                    self._retry.max_attempts,
                    type(error).__name__,
                    self._redact(str(error)),
                    delay,
                )
                await self._sleep(delay)
                attempt += 1

    def _delay_before_retry(self, error: ConnectorError, attempt: int, *, repeatable: bool) -> float | None:
        """How long to wait before the next attempt, or None when there must be none."""
        if not repeatable or attempt >= self._retry.max_attempts or isinstance(error, CircuitOpen):
            return None
        if isinstance(error, ConnectFailed):
            return self._retry.backoff(attempt, self._rng)
        if error.status not in RETRY_STATUSES:
            return None  # e.g. a read timeout or a reset: the outcome is unknown, Temporal decides
        if isinstance(error, RateLimited) and error.retry_after is not None:
            if error.retry_after > self._retry.max_retry_after:
                return None  # too long to hold a worker slot: Temporal's next retry waits instead
            return error.retry_after
        return self._retry.backoff(attempt, self._rng)

    async def _attempt(
        self, method: str, url: str, *, headers: dict[str, str], json: Any, data: Mapping[str, Any] | None
    ) -> httpx.Response:
        self._breaker.admit()
        try:
            response = await self._send(method, url, headers=headers, json=json, data=data)
        except ConnectorError as error:
            self._judge(error)
            raise
        except BaseException:
            self._breaker.abandon()  # cancelled: no verdict on the service
            raise
        if response.is_success:
            self._breaker.record_success()
            return response
        refusal = self._error_mapper(response, self._redact)
        self._judge(refusal)
        raise refusal

    async def _send(
        self, method: str, url: str, *, headers: dict[str, str], json: Any, data: Mapping[str, Any] | None
    ) -> httpx.Response:
        where = f"{self.name}: {method} {self._display(url)}"
        try:
            return await self._client.request(method, url, headers=headers, json=json, data=data)
        except (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout) as exc:
            raise ConnectFailed(self._redact(f"{where}: no connection ({_describe(exc)})")) from exc
        except httpx.TimeoutException as exc:
            raise TimeoutError_(
                self._redact(f"{where}: no answer in time, the effect may have happened")
            ) from exc
        except (httpx.UnsupportedProtocol, httpx.InvalidURL, httpx.LocalProtocolError) as exc:
            raise ClientError(self._redact(f"{where}: unusable request ({_describe(exc)})")) from exc
        except httpx.HTTPError as exc:
            raise TransportError(
                self._redact(f"{where}: connection lost after sending ({_describe(exc)})")
            ) from exc

    def _judge(self, error: ConnectorError) -> None:
        """Tell the breaker: a sick service counts against it, a wrong request does not."""
        if isinstance(error, TransportError | TimeoutError_ | ServerError | RateLimited):
            self._breaker.record_failure()
        elif error.status is not None:
            self._breaker.record_success()  # the service answered sensibly
        else:
            self._breaker.abandon()  # nothing reached the service

    def _display(self, url: str) -> str:
        try:
            return safe_url(self._client.base_url.join(url))
        except httpx.InvalidURL:
            return "<invalid URL>"


def _describe(exc: BaseException) -> str:
    text = str(exc)
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__
