"""Reconciling an effect whose outcome is unknown: ask, never guess (docs/ARCHITECTURE.md, decision 4).

The `ReconcileEffect` workflow calls these two activities. `check` gathers what is known
about one effect, most authoritative first: the ledger (someone already settled it), a
webhook event kept for it, then the connector's lookup. `resolve` writes the conclusive
answer into the ledger, only while the effect is still open, so the first answer wins.

The models here are the reconciler's inputs and outputs too: the workflow imports them
through the sandbox's pass-through, as it does every activity reference.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any, Literal

from pydantic import Field
from temporalio import activity

from activities.actions import effect_request
from activities.deps import ActivityDeps
from aios.ledger import effects
from aios.ledger.webhooks import WebhookEvent
from aios.models.base import Payload
from aios.models.run import ActionCall
from connectors.actions.base import ActionConnector, EffectLookup, EffectRequest
from connectors.errors import ConnectorError

LedgerState = Literal["pending", "succeeded", "failed", "unknown", "missing"]
# What one check found. "not_applied" is the lookup's "no such effect"; "cannot_tell" is worth
# asking again later; "no_lookup" is not (this connector or service cannot be looked up).
Verdict = Literal["succeeded", "failed", "not_applied", "cannot_tell", "no_lookup"]
Source = Literal["ledger", "webhook", "lookup", "operator", "none"]
Outcome = Literal["succeeded", "failed", "unresolved", "not_unknown"]


class ReconcileInput(Payload):
    """One effect to settle, with what its connector needs to look it up."""

    effect_key: str = Field(min_length=1)
    run_id: str
    connector: str
    action: str
    params: dict[str, Any] = Field(default_factory=dict)
    amount: float | None = None
    target: str | None = None
    original: dict[str, Any] | None = None
    poll_interval: timedelta = Field(default=timedelta(seconds=30), gt=timedelta(0))
    max_duration: timedelta = Field(default=timedelta(hours=1), gt=timedelta(0))
    # A request can still be on its way when the caller gave up on it: a lookup's "not applied"
    # is believed only once this long has passed since the reconciler started.
    settle: timedelta = Field(default=timedelta(seconds=60), ge=timedelta(0))

    @classmethod
    def for_call(cls, call: ActionCall, **timing: timedelta) -> ReconcileInput:
        """The reconciler's input for an action call whose effect the ledger calls unknown."""
        return cls(
            effect_key=call.effect_key,
            run_id=call.run_id,
            connector=call.connector,
            action=call.action,
            params=call.params,
            amount=call.amount,
            target=call.target,
            original=call.original,
            **timing,
        )

    def effect_request(self) -> EffectRequest:
        return effect_request(self)


class ReconcileResult(Payload):
    effect_key: str
    outcome: Outcome = Field(
        description="succeeded/failed: settled (the ledger says so); unresolved: no conclusive "
        "answer in time, the ledger stays unknown; not_unknown: when the reconciler started, the "
        "ledger said pending or failed (or had no such effect): nothing to settle"
    )
    resolved_by: Source
    ledger_state: LedgerState
    response: dict[str, Any] = Field(default_factory=dict)
    error: str = ""
    event_id: str | None = Field(default=None, description="the webhook event that settled it")
    needs_operator: bool = False
    polls: int = 0
    webhooks: list[str] = Field(default_factory=list, description="distinct event ids received")
    detail: str = ""


class ReconcileProgress(Payload):
    """The reconciler's `state` query."""

    effect_key: str
    polls: int
    webhooks: list[str] = Field(default_factory=list, description="distinct event ids received")
    duplicate_webhooks: int = 0
    refused_webhooks: list[str] = Field(default_factory=list, description="the first 20, with reasons")
    refused_count: int = Field(default=0, description="every input the webhook signal refused")
    lookup_usable: bool = True
    last_verdict: str = ""
    result: ReconcileResult | None = None


class CheckRequest(Payload):
    effect: ReconcileInput
    use_lookup: bool = True


class CheckResult(Payload):
    ledger_state: LedgerState
    verdict: Verdict
    source: Source
    response: dict[str, Any] = Field(default_factory=dict)
    error: str = ""
    event_id: str | None = None


class ResolveRequest(Payload):
    effect_key: str
    outcome: Literal["succeeded", "failed"]
    response: dict[str, Any] = Field(default_factory=dict)
    error: str = ""


class ResolveResult(Payload):
    ledger_state: LedgerState
    response: dict[str, Any] = Field(default_factory=dict)
    error: str = ""


class LedgerReading(Payload):
    """An effect's row as the ledger has it now (the run waiting for the operator reads it)."""

    ledger_state: LedgerState
    response: dict[str, Any] = Field(default_factory=dict)
    error: str = ""
    resolved_by: str | None = Field(default=None, description="the person who settled it by hand")
    resolution_note: str = ""


class ReconcileActivities:
    def __init__(self, deps: ActivityDeps, connectors: dict[str, ActionConnector] | None = None) -> None:
        self._pool = deps.pool
        self._connectors = connectors if connectors is not None else deps.connectors
        self._subjects = deps.subjects

    @activity.defn(name="reconcile.check")
    async def check(self, request: CheckRequest) -> CheckResult:
        key = request.effect.effect_key
        async with self._pool.connection() as conn:
            record = await effects.find(conn, key, vault=self._subjects)
            if record is None:
                return CheckResult(
                    ledger_state="missing",
                    verdict="cannot_tell",
                    source="ledger",
                    error=f"the ledger has no effect {key!r}",
                )
            if record.state in ("succeeded", "failed"):
                return CheckResult(
                    ledger_state=record.state,
                    verdict=record.state,
                    source="ledger",
                    response=record.response or {},
                    error=record.error,
                )
            if record.state == "pending":  # no attempt said it may have applied: not ours to settle
                return CheckResult(ledger_state="pending", verdict="cannot_tell", source="ledger")
            kept = await effects.first_webhook_event(conn, key, vault=self._subjects)
        if kept is not None:
            event = WebhookEvent.model_validate(kept)
            return CheckResult(
                ledger_state="unknown",
                verdict=event.outcome,
                source="webhook",
                response=event.response,
                error=event.error,
                event_id=event.event_id,
            )
        if not request.use_lookup:
            return CheckResult(ledger_state="unknown", verdict="no_lookup", source="none")
        return await self._lookup(request.effect)

    async def _lookup(self, effect: ReconcileInput) -> CheckResult:
        connector = self._connectors.get(effect.connector)
        if not isinstance(connector, EffectLookup):
            return CheckResult(
                ledger_state="unknown",
                verdict="no_lookup",
                source="none",
                error=f"connector {effect.connector!r} cannot look effects up; waiting for a webhook",
            )
        try:
            found = await connector.lookup(effect.effect_request())
        except ConnectorError as exc:
            return CheckResult(
                ledger_state="unknown",
                verdict="cannot_tell" if exc.retryable else "no_lookup",
                source="lookup",
                error=f"{type(exc).__name__}: {exc}",
            )
        if found is None:
            return CheckResult(ledger_state="unknown", verdict="not_applied", source="lookup")
        return CheckResult(ledger_state="unknown", verdict="succeeded", source="lookup", response=found)

    @activity.defn(name="reconcile.read_ledger")
    async def read_ledger(self, effect_key: str) -> LedgerReading:
        async with self._pool.connection() as conn:
            row = await effects.operator_view(conn, effect_key, vault=self._subjects)
        if row is None:
            return LedgerReading(ledger_state="missing")
        return LedgerReading(
            ledger_state=row.state,
            response=row.response or {},
            error=row.error,
            resolved_by=row.resolved_by,
            resolution_note=row.resolution_note,
        )

    @activity.defn(name="reconcile.resolve")
    async def resolve(self, request: ResolveRequest) -> ResolveResult:
        async with self._pool.connection() as conn:
            record = await effects.resolve(
                conn,
                key=request.effect_key,
                state=request.outcome,
                response=request.response,
                error=request.error,
                vault=self._subjects,
            )
        if record is None:
            return ResolveResult(ledger_state="missing")
        return ResolveResult(ledger_state=record.state, response=record.response or {}, error=record.error)
