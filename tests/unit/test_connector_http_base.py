"""The resilient HTTP base against httpx.MockTransport: retries, Retry-After, breaker, redaction."""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime

import httpx
import pytest

from connectors.actions.base import EffectRequest
from connectors.actions.http import HttpActionConnector
from connectors.breaker import BreakerPolicy, CircuitBreaker
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
from connectors.http_base import ResilientHttp, RetryPolicy, parse_retry_after

API_KEY = "sk_live_SuperSecret42"
URL = "https://api.example.test/v1/things"
Handler = Callable[[httpx.Request], httpx.Response]


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class Harness:
    """A ResilientHttp on a scripted transport, recording requests and requested sleeps."""

    def __init__(
        self,
        *answers: httpx.Response | Exception,
        retry: RetryPolicy | None = None,
        breaker: CircuitBreaker | None = None,
    ) -> None:
        self.answers = list(answers)
        self.requests: list[httpx.Request] = []
        self.sleeps: list[float] = []
        self.http = ResilientHttp(
            "test",
            transport=httpx.MockTransport(self._handle),
            headers={"Authorization": f"Bearer {API_KEY}"},
            retry=retry or RetryPolicy(max_attempts=3, base_delay=0.5, max_delay=4.0, max_retry_after=10),
            breaker=breaker,
            sleep=self._sleep,
            rng=lambda: 1.0,  # the top of the jitter range: delays are predictable
        )

    def _handle(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        answer = self.answers.pop(0) if self.answers else httpx.Response(200, json={"ok": True})
        if isinstance(answer, Exception):
            raise answer
        return answer

    async def _sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)

    async def post(self, *, key: str | None = "key-1") -> httpx.Response:
        return await self.http.request("POST", URL, json={"a": 1}, idempotency_key=key)


# -- retries only where repeating is safe -------------------------------------------------------


async def test_a_5xx_is_retried_with_backoff_when_the_request_has_a_key() -> None:
    harness = Harness(httpx.Response(500), httpx.Response(502), httpx.Response(201, json={"id": "x"}))
    response = await harness.post()
    assert response.status_code == 201
    assert len(harness.requests) == 3
    assert harness.sleeps == [0.5, 1.0]  # base * 2^(attempt-1), at the top of the jitter range
    assert {r.headers["Idempotency-Key"] for r in harness.requests} == {"key-1"}


async def test_full_jitter_picks_anywhere_below_the_exponential_bound() -> None:
    policy = RetryPolicy(base_delay=0.5, max_delay=3.0)
    assert policy.backoff(1, lambda: 0.0) == 0.0
    assert policy.backoff(2, lambda: 0.5) == 0.5
    assert policy.backoff(10, lambda: 1.0) == 3.0  # capped


async def test_a_post_without_a_key_is_never_retried() -> None:
    harness = Harness(httpx.Response(503))
    with pytest.raises(ServerError):
        await harness.post(key=None)
    assert len(harness.requests) == 1
    assert harness.sleeps == []


async def test_a_get_without_a_key_is_retried() -> None:
    harness = Harness(httpx.Response(503), httpx.Response(200, json={}))
    response = await harness.http.request("GET", URL)
    assert response.status_code == 200
    assert len(harness.requests) == 2


async def test_retries_stop_after_the_policy_attempts() -> None:
    harness = Harness(*(httpx.Response(500) for _ in range(5)))
    with pytest.raises(ServerError):
        await harness.post()
    assert len(harness.requests) == 3


@pytest.mark.parametrize(
    ("status", "error_type"),
    [(400, ClientError), (401, NotConfigured), (404, ClientError), (409, Conflict), (501, ServerError)],
)
async def test_answers_that_cannot_improve_are_not_retried(
    status: int, error_type: type[ConnectorError]
) -> None:
    harness = Harness(httpx.Response(status, json={"error": {"message": "nope"}}))
    with pytest.raises(error_type) as caught:
        await harness.post()
    assert type(caught.value) is error_type
    assert caught.value.status == status
    assert len(harness.requests) == 1


async def test_a_read_timeout_is_not_retried_inside_the_connector() -> None:
    # The service may have applied the effect: the ledger records "unknown" and Temporal retries.
    harness = Harness(httpx.ReadTimeout("read timed out"))
    with pytest.raises(TimeoutError_) as caught:
        await harness.post()
    assert isinstance(caught.value.__cause__, httpx.ReadTimeout)
    assert caught.value.retryable
    assert len(harness.requests) == 1


async def test_a_failed_connection_is_retried_since_nothing_was_sent() -> None:
    harness = Harness(httpx.ConnectError("refused"), httpx.ConnectTimeout("slow"), httpx.Response(200))
    response = await harness.post()
    assert response.status_code == 200
    assert len(harness.requests) == 3


async def test_a_connection_lost_after_sending_is_a_transport_error_not_retried() -> None:
    harness = Harness(httpx.RemoteProtocolError("Server disconnected without sending a response."))
    with pytest.raises(TransportError) as caught:
        await harness.post()
    assert not isinstance(caught.value, ConnectFailed)
    assert isinstance(caught.value.__cause__, httpx.RemoteProtocolError)
    assert len(harness.requests) == 1


async def test_an_unusable_url_is_a_client_error() -> None:
    harness = Harness(httpx.UnsupportedProtocol("ftp"))
    with pytest.raises(ClientError) as caught:
        await harness.post()
    assert not caught.value.retryable


# -- Retry-After -------------------------------------------------------------------------------


async def test_retry_after_seconds_on_429_is_the_delay_requested() -> None:
    harness = Harness(httpx.Response(429, headers={"Retry-After": "2"}), httpx.Response(200))
    await harness.post()
    assert harness.sleeps == [2.0]


async def test_retry_after_as_an_http_date_on_503_is_honoured() -> None:
    later = datetime.now(UTC) + timedelta(seconds=6)
    harness = Harness(
        httpx.Response(503, headers={"Retry-After": format_datetime(later, usegmt=True)}),
        httpx.Response(200),
    )
    await harness.post()
    assert len(harness.sleeps) == 1
    assert 4.0 <= harness.sleeps[0] <= 6.0  # whole seconds in the header, time passing here


async def test_a_retry_after_beyond_the_cap_ends_the_attempts_and_travels_on_the_error() -> None:
    harness = Harness(httpx.Response(429, headers={"Retry-After": "120"}))
    with pytest.raises(RateLimited) as caught:
        await harness.post()
    assert caught.value.retry_after == 120.0  # Temporal's next retry waits this long instead
    assert harness.sleeps == []
    assert len(harness.requests) == 1


async def test_a_503_without_retry_after_is_a_server_error_with_backoff() -> None:
    harness = Harness(httpx.Response(503), httpx.Response(200))
    await harness.post()
    assert harness.sleeps == [0.5]


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        ("3", 3.0),
        ("1.5", 1.5),
        ("-4", 0.0),
        ("Wed, 21 Oct 2015 07:28:30 GMT", 30.0),
        ("Wed, 21 Oct 2015 07:27:00 GMT", 0.0),  # in the past: no wait
        ("soon", None),
        ("", None),
        (None, None),
    ],
)
def test_parse_retry_after(header: str | None, expected: float | None) -> None:
    now = datetime(2015, 10, 21, 7, 28, 0, tzinfo=UTC)
    assert parse_retry_after(header, now=now) == expected


# -- the circuit breaker -----------------------------------------------------------------------


def _breaker(clock: FakeClock, **policy: float) -> CircuitBreaker:
    settings = {"consecutive_failures": 3, "cool_down_seconds": 30.0, **policy}
    return CircuitBreaker("test", BreakerPolicy(**settings), clock=clock)  # type: ignore[arg-type]


async def test_breaker_opens_after_consecutive_failures_and_refuses_without_calling() -> None:
    clock = FakeClock()
    harness = Harness(*(httpx.Response(500) for _ in range(3)), breaker=_breaker(clock))
    for _ in range(3):
        with pytest.raises(ServerError):
            await harness.post(key=None)
    assert harness.http.breaker_state().state == "open"
    with pytest.raises(CircuitOpen) as caught:
        await harness.post(key=None)
    assert len(harness.requests) == 3  # the refused call never reached the service
    assert caught.value.retryable
    assert caught.value.retry_after == 30.0
    state = harness.http.breaker_state()
    assert (state.consecutive_failures, state.times_opened, state.probe_in) == (3, 1, 30.0)


async def test_breaker_lets_one_probe_through_after_the_cool_down_and_closes_on_success() -> None:
    clock = FakeClock()
    harness = Harness(*(httpx.Response(500) for _ in range(3)), breaker=_breaker(clock))
    for _ in range(3):
        with pytest.raises(ServerError):
            await harness.post(key=None)
    clock.now += 31
    assert harness.http.breaker_state().state == "half_open"
    response = await harness.post(key=None)  # the probe
    assert response.status_code == 200
    state = harness.http.breaker_state()
    assert (state.state, state.consecutive_failures) == ("closed", 0)


async def test_a_failed_probe_opens_the_circuit_for_another_cool_down() -> None:
    clock = FakeClock()
    harness = Harness(*(httpx.Response(500) for _ in range(4)), breaker=_breaker(clock))
    for _ in range(3):
        with pytest.raises(ServerError):
            await harness.post(key=None)
    clock.now += 31
    with pytest.raises(ServerError):
        await harness.post(key=None)
    state = harness.http.breaker_state()
    assert (state.state, state.times_opened) == ("open", 2)
    with pytest.raises(CircuitOpen):
        await harness.post(key=None)


def test_half_open_admits_a_single_probe_at_a_time() -> None:
    clock = FakeClock()
    breaker = _breaker(clock)
    for _ in range(3):
        breaker.record_failure()
    clock.now += 31
    breaker.admit()  # the probe
    with pytest.raises(CircuitOpen):
        breaker.admit()
    breaker.abandon()  # the probe was cancelled: the next caller may probe
    breaker.admit()


def test_breaker_opens_on_a_failure_rate_over_the_window() -> None:
    clock = FakeClock()
    breaker = _breaker(clock, consecutive_failures=100, failure_rate=0.5, minimum_calls=4, window_seconds=60)
    for failed in (False, True, False):
        breaker.admit()
        breaker.record_failure() if failed else breaker.record_success()
    assert breaker.snapshot().state == "closed"  # three calls: too few to judge a rate
    breaker.admit()
    breaker.record_failure()
    snapshot = breaker.snapshot()
    assert (snapshot.state, snapshot.window_calls, snapshot.window_failures) == ("open", 4, 2)


def test_failures_older_than_the_window_are_forgotten() -> None:
    clock = FakeClock()
    breaker = _breaker(clock, consecutive_failures=100, failure_rate=0.5, minimum_calls=4, window_seconds=60)
    breaker.record_failure()
    breaker.record_failure()
    clock.now += 61
    for _ in range(3):
        breaker.record_success()
    breaker.record_failure()
    snapshot = breaker.snapshot()
    assert (snapshot.state, snapshot.window_calls, snapshot.window_failures) == ("closed", 4, 1)


async def test_client_errors_do_not_count_against_the_service() -> None:
    clock = FakeClock()
    harness = Harness(*(httpx.Response(400) for _ in range(5)), breaker=_breaker(clock))
    for _ in range(5):
        with pytest.raises(ClientError):
            await harness.post()
    assert harness.http.breaker_state().state == "closed"


async def test_retries_stop_when_the_breaker_opens_midway() -> None:
    clock = FakeClock()
    harness = Harness(
        *(httpx.Response(500) for _ in range(3)),
        breaker=_breaker(clock, consecutive_failures=2),
    )
    with pytest.raises(CircuitOpen):
        await harness.post()
    assert len(harness.requests) == 2


# -- secrets never leave in errors or logs -----------------------------------------------------


async def test_an_echoed_authorization_header_is_redacted_from_the_error() -> None:
    echo = {"error": {"message": f"Authorization was 'Bearer {API_KEY}'. Try again."}}
    harness = Harness(httpx.Response(403, json=echo))
    with pytest.raises(ClientError) as caught:
        await harness.post()
    assert API_KEY not in str(caught.value)
    assert "Authorization was '[REDACTED]'" in str(caught.value)


async def test_secrets_in_the_url_are_left_out_of_the_error() -> None:
    harness = Harness(httpx.ConnectError("refused"))
    with pytest.raises(ConnectFailed) as caught:
        await harness.http.request("POST", "https://user:pw123456@api.example.test/x?api_key=abcdef123")
    message = str(caught.value)
    assert "pw123456" not in message
    assert "abcdef123" not in message
    assert "https://api.example.test/x" in message


async def test_retry_log_lines_carry_no_secret(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING, logger="connectors.http")
    echo = {"error": {"message": f"bad key {API_KEY}"}}
    harness = Harness(httpx.Response(500, json=echo), httpx.Response(200))
    await harness.post()
    assert caplog.records, "a retry is logged"
    assert all(API_KEY not in record.getMessage() for record in caplog.records)


async def test_a_named_secret_is_redacted_wherever_it_appears() -> None:
    http = ResilientHttp(
        "test",
        transport=httpx.MockTransport(lambda _: httpx.Response(422, text="echo: hunter2-password")),
        secrets=["hunter2-password"],
    )
    with pytest.raises(ClientError) as caught:
        await http.request("POST", URL)
    assert "hunter2-password" not in str(caught.value)


# -- the generic HTTP action on this base --------------------------------------------------------


async def test_http_action_posts_json_with_the_idempotency_key() -> None:
    seen: list[httpx.Request] = []

    def handle(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(200, json={"id": "fx_1"})

    async with httpx.AsyncClient(transport=httpx.MockTransport(handle)) as client:
        connector = HttpActionConnector(client)
        result = await connector.perform(
            EffectRequest(
                idempotency_key="run/step-1/charge",
                action="charge",
                params={"customer": "c1"},
                amount=5,
                target="https://svc.test/charge",
            )
        )
    assert result == {"status": 200, "body": {"id": "fx_1"}}
    assert seen[0].headers["Idempotency-Key"] == "run/step-1/charge"
    assert json.loads(seen[0].read()) == {"action": "charge", "amount": 5, "customer": "c1"}


async def test_http_action_without_target_is_not_configured() -> None:
    connector = HttpActionConnector(httpx.AsyncClient())
    with pytest.raises(NotConfigured, match="no `target` URL"):
        await connector.perform(EffectRequest(idempotency_key="k", action="charge"))
