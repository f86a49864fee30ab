"""Executing an agent's actions: every effect goes through the effect ledger, exactly once.

The intent is committed before the connector is called and the outcome after, under a key
made of the workflow id, the step and the action. A retry after a crash finds the row: a
finished effect is replayed from the ledger; an unfinished one is performed again with the
same idempotency key, which the connector passes downstream so the service applies it once.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import timedelta
from typing import Any

from temporalio import activity
from temporalio.exceptions import ApplicationError

from activities.deps import ActivityDeps
from aios.ledger import effects
from aios.models.run import ActionCall, ActionResult
from connectors.actions.base import ActionConnector, EffectRequest
from connectors.errors import ConnectorError, RateLimited, TimeoutError_

# The workflow's heartbeat timeout must be a few of these.
HEARTBEAT_EVERY = timedelta(seconds=2)


class UnknownConnector(Exception):
    """The manifest names a connector this worker does not have."""


class ActionActivities:
    def __init__(self, deps: ActivityDeps, connectors: dict[str, ActionConnector]) -> None:
        self._pool = deps.pool
        self._connectors = connectors

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
                )
            except effects.EffectConflict as exc:
                raise ApplicationError(str(exc), non_retryable=True, type=type(exc).__name__) from exc
        if record.finished:
            return _replayed(record)
        return await self._perform(connector, call)

    def _connector(self, name: str) -> ActionConnector:
        connector = self._connectors.get(name)
        if connector is None:
            raise ApplicationError(
                f"connector {name!r} is not configured in this worker; available: {sorted(self._connectors)}",
                non_retryable=True,
                type=UnknownConnector.__name__,
            )
        return connector

    async def _perform(self, connector: ActionConnector, call: ActionCall) -> ActionResult:
        request = EffectRequest(
            idempotency_key=call.effect_key,
            action=call.action,
            params=call.params,
            amount=call.amount,
            target=call.target,
        )
        try:
            async with _heartbeating():
                response = await connector.perform(request)
        except ConnectorError as exc:
            await self._record_failure(call, exc)
            raise _as_application_error(exc) from exc
        async with self._pool.connection() as conn:
            await effects.finish(conn, key=call.effect_key, state="succeeded", response=response)
        return ActionResult(status="succeeded", response=response)

    async def _record_failure(self, call: ActionCall, error: ConnectorError) -> None:
        # A timeout may have applied the effect: "unknown" until a retry or reconciliation says.
        state: effects.EffectState = "unknown" if isinstance(error, TimeoutError_) else "pending"
        if not error.retryable:
            state = "failed"
        async with self._pool.connection() as conn:
            await effects.finish(conn, key=call.effect_key, state=state, error=str(error))


@asynccontextmanager
async def _heartbeating() -> AsyncIterator[None]:
    """Heartbeat while a connector call runs, so a dead worker's call is retried in seconds."""

    async def beat() -> None:
        while True:
            activity.heartbeat()
            await asyncio.sleep(HEARTBEAT_EVERY.total_seconds())

    task = asyncio.create_task(beat())
    try:
        yield
    finally:
        task.cancel()


def _request_fingerprint(call: ActionCall) -> dict[str, Any]:
    return {"action": call.action, "connector": call.connector, "params": call.params, "amount": call.amount}


def _replayed(record: effects.EffectRecord) -> ActionResult:
    if record.state == "failed":
        raise ApplicationError(
            f"this effect already failed: {record.error}", non_retryable=True, type="EffectFailed"
        )
    return ActionResult(status="succeeded", response=record.response or {}, replayed=True)


def _as_application_error(error: ConnectorError) -> ApplicationError:
    delay = None
    if isinstance(error, RateLimited) and error.retry_after is not None:
        delay = timedelta(seconds=error.retry_after)
    return ApplicationError(
        str(error),
        non_retryable=not error.retryable,
        type=type(error).__name__,
        next_retry_delay=delay,
    )
