"""Fault injection against the loopback effect server: an action either takes effect exactly
once at the server or fails with its typed error.

The effect server applies an effect once per Idempotency-Key and answers a repeated key with
the first answer, as Stripe does. Faults are queued per request. The first group drives the
connector directly; the second goes through the ledger-backed execute activity with the real
Postgres, to show an effect whose answer was lost ends `succeeded` after a retry, once.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator

import httpx
import pytest
from temporalio.exceptions import ApplicationError
from temporalio.testing import ActivityEnvironment

from activities.actions import ActionActivities
from activities.deps import ActivityDeps, close_deps, open_deps
from aios.ledger import effects
from aios.models.run import ActionCall
from aios.settings import Settings
from connectors.actions.base import EffectRequest
from connectors.actions.http import HttpActionConnector
from connectors.errors import ConnectFailed, RateLimited, ServerError, TimeoutError_, TransportError
from connectors.http_base import ResilientHttp, RetryPolicy
from tests.support.effect_server import EffectServer, Fault

CLIENT_TIMEOUT = 0.5  # for the answer; connecting may take longer on a loaded machine
CONNECT_TIMEOUT = 10.0
HANG = 1.5  # past the client's timeout
RETRY = RetryPolicy(max_attempts=3, base_delay=0.05, max_delay=0.2, max_retry_after=1.0)


class RecordedSleep:
    """asyncio.sleep that also remembers what the connector asked for."""

    def __init__(self) -> None:
        self.requested: list[float] = []

    async def __call__(self, seconds: float) -> None:
        self.requested.append(seconds)
        await asyncio.sleep(seconds)


@pytest.fixture
def sleep() -> RecordedSleep:
    return RecordedSleep()


@pytest.fixture
async def http_connector(sleep: RecordedSleep) -> AsyncIterator[HttpActionConnector]:
    http = ResilientHttp(
        "http", timeout=httpx.Timeout(CLIENT_TIMEOUT, connect=CONNECT_TIMEOUT), retry=RETRY, sleep=sleep
    )
    yield HttpActionConnector(http=http)
    await http.aclose()


def _charge(server: EffectServer, key: str | None = None) -> EffectRequest:
    return EffectRequest(
        idempotency_key=key or f"run-{uuid.uuid4().hex[:8]}/step-1/charge",
        action="charge",
        params={"customer": "c-1"},
        amount=42,
        target=f"{server.url}/effects/charge",
    )


def _wait_for_hung_requests() -> None:
    """Let a hung server thread finish, so a late effect would be counted before asserting."""
    time.sleep(HANG + 0.3)


# -- the connector on its own ------------------------------------------------------------------


async def test_a_500_is_retried_and_applied_once(
    effect_server: EffectServer, http_connector: HttpActionConnector
) -> None:
    effect_server.faults.append(Fault(status=500))
    request = _charge(effect_server)
    result = await http_connector.perform(request)
    assert result["status"] == 200
    assert result["body"]["key"] == request.idempotency_key
    assert effect_server.applied[request.idempotency_key] == 1
    assert len(effect_server.requests) == 2


async def test_a_503_with_retry_after_waits_as_asked_then_applies_once(
    effect_server: EffectServer, http_connector: HttpActionConnector, sleep: RecordedSleep
) -> None:
    effect_server.faults.append(Fault(status=503, retry_after=0.3))
    request = _charge(effect_server)
    await http_connector.perform(request)
    assert sleep.requested == [0.3]
    assert effect_server.applied[request.idempotency_key] == 1


async def test_a_429_with_retry_after_waits_as_asked_then_applies_once(
    effect_server: EffectServer, http_connector: HttpActionConnector, sleep: RecordedSleep
) -> None:
    effect_server.faults.append(Fault(status=429, retry_after=0.2))
    request = _charge(effect_server)
    await http_connector.perform(request)
    assert sleep.requested == [0.2]
    assert effect_server.applied[request.idempotency_key] == 1


async def test_a_429_asking_for_longer_than_the_cap_fails_for_temporal_to_wait(
    effect_server: EffectServer, http_connector: HttpActionConnector, sleep: RecordedSleep
) -> None:
    effect_server.faults.append(Fault(status=429, retry_after=30))
    with pytest.raises(RateLimited) as caught:
        await http_connector.perform(_charge(effect_server))
    assert caught.value.retry_after == 30
    assert sleep.requested == []
    assert effect_server.total_effects() == 0


async def test_persistent_5xx_fails_typed_with_no_effect(
    effect_server: EffectServer, http_connector: HttpActionConnector
) -> None:
    effect_server.faults.extend(Fault(status=502) for _ in range(3))
    with pytest.raises(ServerError) as caught:
        await http_connector.perform(_charge(effect_server))
    assert caught.value.status == 502
    assert len(effect_server.requests) == 3
    assert effect_server.total_effects() == 0


async def test_a_hang_past_the_timeout_fails_typed_and_the_retry_applies_once(
    effect_server: EffectServer, http_connector: HttpActionConnector
) -> None:
    # The server applies the effect after its hang: late, but it must still count only once.
    effect_server.faults.append(Fault(hang_seconds=HANG))
    request = _charge(effect_server)
    with pytest.raises(TimeoutError_):
        await http_connector.perform(request)
    result = await http_connector.perform(request)  # what Temporal's retry does
    assert result["status"] == 200
    await asyncio.to_thread(_wait_for_hung_requests)
    assert effect_server.applied[request.idempotency_key] == 1
    assert effect_server.duplicates() == 0


async def test_a_connection_reset_fails_typed_and_the_retry_applies_once(
    effect_server: EffectServer, http_connector: HttpActionConnector
) -> None:
    effect_server.faults.append(Fault(reset=True))
    request = _charge(effect_server)
    with pytest.raises(TransportError) as caught:
        await http_connector.perform(request)
    assert not isinstance(caught.value, ConnectFailed)  # the request was sent: not retried here
    assert effect_server.total_effects() == 0
    await http_connector.perform(request)
    assert effect_server.applied[request.idempotency_key] == 1


async def test_apply_then_hang_times_out_and_the_retry_gets_the_first_answer(
    effect_server: EffectServer, http_connector: HttpActionConnector
) -> None:
    effect_server.faults.append(Fault(apply_then_hang=True, hang_seconds=HANG))
    request = _charge(effect_server)
    with pytest.raises(TimeoutError_, match="the effect may have happened"):
        await http_connector.perform(request)
    assert effect_server.applied[request.idempotency_key] == 1  # it did happen
    result = await http_connector.perform(request)
    assert result["body"] == effect_server.responses[request.idempotency_key]
    assert effect_server.applied[request.idempotency_key] == 1


async def test_nobody_listening_is_a_failed_connection_after_the_retries(
    http_connector: HttpActionConnector, sleep: RecordedSleep
) -> None:
    server = EffectServer().start()
    server.stop()  # its port is now closed
    with pytest.raises(ConnectFailed):
        await http_connector.perform(_charge(server))
    assert len(sleep.requested) == RETRY.max_attempts - 1


# -- through the ledger-backed execute activity ------------------------------------------------


@pytest.fixture
async def deps(stack_settings: Settings) -> AsyncIterator[ActivityDeps]:
    opened = await open_deps(stack_settings)
    yield opened
    await close_deps(opened)


def _call(server: EffectServer, key: str) -> ActionCall:
    return ActionCall(
        run_id=key.partition("/")[0],
        step=1,
        effect_key=key,
        action="charge",
        connector="http",
        params={"customer": "c-1"},
        amount=42,
        target=f"{server.url}/effects/charge",
    )


async def _ledger_row(deps: ActivityDeps, key: str) -> dict[str, object]:
    async with deps.pool.connection() as conn:
        rows = await effects.list_effects(conn, run_id=key.partition("/")[0])
    (row,) = (row for row in rows if row["effect_key"] == key)
    return row


async def test_a_lost_answer_ends_succeeded_in_the_ledger_with_one_effect(
    effect_server: EffectServer, deps: ActivityDeps, http_connector: HttpActionConnector
) -> None:
    activities = ActionActivities(deps, {"http": http_connector})
    key = f"run-{uuid.uuid4().hex[:10]}/step-1/charge"
    call = _call(effect_server, key)
    effect_server.faults.append(Fault(apply_then_hang=True, hang_seconds=HANG))

    with pytest.raises(ApplicationError) as caught:
        await ActivityEnvironment().run(activities.execute, call)
    assert caught.value.type == TimeoutError_.__name__
    assert not caught.value.non_retryable  # Temporal will retry it
    assert (await _ledger_row(deps, key))["state"] == "unknown"
    assert effect_server.applied[key] == 1

    result = await ActivityEnvironment().run(activities.execute, call)  # Temporal's retry
    assert result.status == "succeeded"
    assert not result.replayed
    row = await _ledger_row(deps, key)
    assert (row["state"], row["attempts"]) == ("succeeded", 2)
    assert effect_server.applied[key] == 1

    again = await ActivityEnvironment().run(activities.execute, call)  # a later replay
    assert again.replayed
    assert len(effect_server.requests) == 2  # the ledger answered; the server was not asked


async def test_a_refused_request_is_final_in_the_ledger(
    effect_server: EffectServer, deps: ActivityDeps, http_connector: HttpActionConnector
) -> None:
    activities = ActionActivities(deps, {"http": http_connector})
    key = f"run-{uuid.uuid4().hex[:10]}/step-1/charge"
    effect_server.faults.append(Fault(status=422))
    with pytest.raises(ApplicationError) as caught:
        await ActivityEnvironment().run(activities.execute, _call(effect_server, key))
    assert (caught.value.type, caught.value.non_retryable) == ("ClientError", True)
    assert (await _ledger_row(deps, key))["state"] == "failed"
    assert effect_server.total_effects() == 0
