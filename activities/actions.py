"""Executing an agent's actions: every effect goes through the effect ledger, exactly once.

The intent is committed before the connector is called and the outcome after, under a key
made of the workflow id, the step and the action. A retry after a crash finds the row: a
finished effect is replayed from the ledger; an unfinished one is performed again with the
same idempotency key, which the connector passes downstream so the service applies it once.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager, suppress
from datetime import timedelta
from typing import Any, Protocol

from temporalio import activity
from temporalio.exceptions import ApplicationError

from activities.deps import ActivityDeps
from aios.errors import EffectConflict, EffectFailed, UnknownConnector, application_error
from aios.ledger import effects
from aios.models.run import ActionCall, ActionResult
from aios.observability.telemetry import tracer
from connectors.actions.base import ActionConnector, EffectRequest
from connectors.errors import ConnectFailed, ConnectorError, RateLimited, TimeoutError_, TransportError

# The workflow's heartbeat timeout must be a few of these.
HEARTBEAT_EVERY = timedelta(seconds=0.3)
# How many times an effect is tried before its failure is final (and reconciled), whether it
# runs as its own activity or inside a think.
EXECUTE_ATTEMPTS = 10


class ActionActivities:
    def __init__(self, deps: ActivityDeps, connectors: dict[str, ActionConnector]) -> None:
        self._pool = deps.pool
        self._connectors = connectors
        self._subjects = deps.subjects

    @activity.defn(name="action.execute")
    async def execute(self, call: ActionCall) -> ActionResult:
        connector = self._connector(call.connector)
        async with self._pool.connection() as conn:
            try:
                record = await effects.begin(
                    conn,
                    key=call.effect_key,
                    run_id=call.run_id,
                    action=call.action,
                    connector=call.connector,
                    request=_request_fingerprint(call),
                    vault=self._subjects,
                )
            except EffectConflict as exc:
                raise application_error(EffectConflict, str(exc), non_retryable=True) from exc
        if record.finished:
            return _replayed(record)
        return await self._perform(connector, call, record.state)

    def _connector(self, name: str) -> ActionConnector:
        connector = self._connectors.get(name)
        if connector is None:
            raise application_error(
                UnknownConnector,
                f"connector {name!r} is not configured in this worker; available: {sorted(self._connectors)}",
                non_retryable=True,
            )
        return connector

    async def _perform(
        self, connector: ActionConnector, call: ActionCall, known: effects.EffectState
    ) -> ActionResult:
        request = effect_request(call)
        try:
            async with heartbeating(), _connector_span(call):
                response = await connector.perform(request)
        except ConnectorError as exc:
            async with self._pool.connection() as conn:
                await effects.finish(
                    conn,
                    key=call.effect_key,
                    state=state_after_failure(known, exc),
                    error=str(exc),
                    vault=self._subjects,
                )
            raise as_application_error(exc) from exc
        async with self._pool.connection() as conn:
            await effects.finish(
                conn, key=call.effect_key, state="succeeded", response=response, vault=self._subjects
            )
        return ActionResult(status="succeeded", response=response)


class EffectFields(Protocol):
    """What a connector needs to perform (or look up) one effect, however it was asked for."""

    @property
    def effect_key(self) -> str: ...
    @property
    def action(self) -> str: ...
    @property
    def params(self) -> dict[str, Any]: ...
    @property
    def amount(self) -> float | None: ...
    @property
    def target(self) -> str | None: ...
    @property
    def original(self) -> dict[str, Any] | None: ...


def effect_request(fields: EffectFields) -> EffectRequest:
    """The connector's request for an effect; the ledger's key is its idempotency key."""
    return EffectRequest(
        idempotency_key=fields.effect_key,
        action=fields.action,
        params=fields.params,
        amount=fields.amount,
        target=fields.target,
        original=fields.original,
    )


def state_after_failure(known: effects.EffectState, error: ConnectorError) -> effects.EffectState:
    """What the ledger may claim after a failed attempt, never forgetting a "maybe applied"."""
    if isinstance(error, ConnectFailed):
        return known  # nothing was sent
    if isinstance(error, TimeoutError_ | TransportError):
        return "unknown"  # the request may have arrived and been applied
    if error.retryable:
        return known  # the service answered that it did not do it (5xx, 429, open breaker)
    # A final refusal now does not undo what an earlier, unanswered attempt may have done.
    return "unknown" if known == "unknown" else "failed"


@asynccontextmanager
async def _connector_span(call: ActionCall) -> AsyncIterator[None]:
    """One span per connector call; the HTTP/SMTP request spans nest below it."""
    attributes = {
        "aios.connector": call.connector,
        "aios.action": call.action,
        "aios.effect.key": call.effect_key,
    }
    with tracer().start_as_current_span(f"{call.connector} {call.action}", attributes=attributes):
        yield


@asynccontextmanager
async def heartbeating() -> AsyncIterator[None]:
    """Heartbeat while a connector call runs, so a dead worker's call is retried in seconds."""

    if activity.info().is_local:
        # A local activity cannot heartbeat; its workflow task's own timeout watches the worker.
        yield
        return

    async def beat() -> None:
        while True:
            activity.heartbeat()
            await asyncio.sleep(HEARTBEAT_EVERY.total_seconds())

    task = asyncio.create_task(beat())
    try:
        yield
    finally:
        task.cancel()
        with suppress(asyncio.CancelledError):
            await task


def _request_fingerprint(call: ActionCall) -> dict[str, Any]:
    return {"action": call.action, "connector": call.connector, "params": call.params, "amount": call.amount}


def _replayed(record: effects.EffectRecord) -> ActionResult:
    if record.state == "failed":
        raise application_error(
            EffectFailed, f"this effect already failed: {record.error}", non_retryable=True
        )
    return ActionResult(status="succeeded", response=record.response or {}, replayed=True)


def as_application_error(error: ConnectorError) -> ApplicationError:
    delay = None
    if isinstance(error, RateLimited) and error.retry_after is not None:
        delay = timedelta(seconds=error.retry_after)
    return application_error(
        type(error), str(error), non_retryable=not error.retryable, next_retry_delay=delay
    )
