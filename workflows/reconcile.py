"""Settling an effect whose outcome is unknown (a timeout after sending): ask, never guess.

`ReconcileEffect` (id `reconcile-<effect key>`) polls what is known about one effect every
`poll_interval` (the ledger, webhook events kept for it, the connector's lookup) and takes
the `webhook` signal that `aios webhook` sends. The first conclusive answer wins: it is
written to the ledger and returned. A lookup's "not applied" counts only after `settle`
(a request may still be on its way). When `max_duration` passes without a conclusive
answer, the ledger stays `unknown` and the result says the operator is needed.
"""

from __future__ import annotations

import contextlib
from datetime import timedelta
from typing import Any, Literal

from temporalio import workflow
from temporalio.common import RetryPolicy
from temporalio.exceptions import ActivityError

from workflows.inbound import inbound_signal

with workflow.unsafe.imports_passed_through():
    from activities.reconcile import (
        CheckRequest,
        CheckResult,
        Outcome,
        ReconcileActivities,
        ReconcileInput,
        ReconcileProgress,
        ReconcileResult,
        ResolveRequest,
        Source,
    )
    from aios.ledger.webhooks import RECONCILE_WORKFLOW, WEBHOOK_SIGNAL, WebhookEvent
    from aios.temporal.inbound import InputRefused

CHECK_TIMEOUT = timedelta(seconds=60)
# A check that fails outright (Postgres away) is one inconclusive poll: the loop asks again.
CHECK_RETRY = RetryPolicy(initial_interval=timedelta(seconds=1), maximum_attempts=3)
RESOLVE_TIMEOUT = timedelta(seconds=30)
# The answer is known; writing it must not be given up.
RESOLVE_RETRY = RetryPolicy(initial_interval=timedelta(seconds=1), maximum_interval=timedelta(seconds=30))
MAX_REFUSED_KEPT = 20


@workflow.defn(name=RECONCILE_WORKFLOW)
class ReconcileEffectWorkflow:
    @workflow.init
    def __init__(self, request: ReconcileInput) -> None:
        self._key = request.effect_key
        self._inbox: list[WebhookEvent] = []
        self._seen: set[str] = set()
        self._received: list[str] = []
        self._duplicates = 0
        self._refused: list[str] = []
        self._refused_count = 0
        self._polls = 0
        self._lookup_usable = True
        self._last_verdict = ""
        self._result: ReconcileResult | None = None

    @workflow.run
    async def run(self, request: ReconcileInput) -> ReconcileResult:
        started = workflow.now()
        deadline = started + request.max_duration
        last_error = ""
        while True:
            if self._inbox:
                event = self._inbox.pop(0)
                return await self._settle(
                    event.outcome, "webhook", response=event.response, error=event.error, event=event.event_id
                )
            asked_at = workflow.now()
            check = await self._check(request)
            self._polls += 1
            self._last_verdict = f"{check.source}: {check.verdict}"
            # Nothing to settle: no attempt may have applied it, or it already failed for good
            # when we started. (A success found in the ledger is an answer: it is returned.)
            if check.ledger_state in ("pending", "missing") or (
                self._polls == 1 and check.ledger_state == "failed"
            ):
                return self._finish(
                    ReconcileResult(
                        effect_key=self._key,
                        outcome="not_unknown",
                        resolved_by="ledger",
                        ledger_state=check.ledger_state,
                        response=check.response,
                        error=check.error,
                        detail=f"the ledger says {check.ledger_state}, not unknown: nothing to reconcile",
                    )
                )
            if check.verdict in ("succeeded", "failed"):
                return await self._settle(
                    check.verdict,
                    check.source,
                    response=check.response,
                    error=check.error,
                    event=check.event_id,
                )
            if check.verdict == "not_applied" and asked_at >= started + request.settle:
                return await self._settle(
                    "failed", "lookup", error="the service has no effect under this idempotency key"
                )
            if check.verdict == "no_lookup":
                self._lookup_usable = False  # keep reading the ledger and kept webhooks
            last_error = check.error or last_error
            remaining = deadline - workflow.now()
            if self._inbox:
                continue  # a webhook came in while checking: it is an answer, even at the deadline
            if remaining <= timedelta(0):
                break
            with contextlib.suppress(TimeoutError):  # time for the next poll
                await workflow.wait_condition(
                    lambda: bool(self._inbox), timeout=min(request.poll_interval, remaining)
                )
        return self._finish(
            ReconcileResult(
                effect_key=self._key,
                outcome="unresolved",
                resolved_by="none",
                ledger_state="unknown",
                needs_operator=True,
                detail=f"no conclusive answer within {request.max_duration}; the ledger stays unknown"
                + (f" (last: {last_error})" if last_error else ""),
            )
        )

    async def _check(self, request: ReconcileInput) -> CheckResult:
        try:
            return await workflow.execute_activity_method(
                ReconcileActivities.check,
                CheckRequest(effect=request, use_lookup=self._lookup_usable),
                start_to_close_timeout=CHECK_TIMEOUT,
                retry_policy=CHECK_RETRY,
            )
        except ActivityError as failure:
            cause = failure.cause if failure.cause is not None else failure
            return CheckResult(ledger_state="unknown", verdict="cannot_tell", source="none", error=str(cause))

    async def _settle(
        self,
        outcome: Literal["succeeded", "failed"],
        source: Source,
        *,
        response: dict[str, Any] | None = None,
        error: str = "",
        event: str | None = None,
    ) -> ReconcileResult:
        ledger = await workflow.execute_activity_method(
            ReconcileActivities.resolve,
            ResolveRequest(effect_key=self._key, outcome=outcome, response=response or {}, error=error),
            start_to_close_timeout=RESOLVE_TIMEOUT,
            retry_policy=RESOLVE_RETRY,
        )
        settled = ledger.ledger_state
        if settled != outcome:  # someone settled it first: the ledger's answer stands
            source, event = "ledger", None
        final: Outcome = settled if settled in ("succeeded", "failed") else "unresolved"
        return self._finish(
            ReconcileResult(
                effect_key=self._key,
                outcome=final,
                resolved_by=source,
                ledger_state=settled,
                response=ledger.response,
                error=ledger.error,
                event_id=event,
                needs_operator=final == "unresolved",
                detail=f"settled by {source}" + (f" (event {event})" if event else ""),
            )
        )

    def _finish(self, result: ReconcileResult) -> ReconcileResult:
        result = result.model_copy(update={"polls": self._polls, "webhooks": list(self._received)})
        self._result = result
        return result

    @inbound_signal(WEBHOOK_SIGNAL, WebhookEvent, description="A webhook event that settles this effect")
    async def webhook(self, event: WebhookEvent) -> None:
        """A webhook event for this effect; a repeated event id is counted and ignored."""
        if event.event_id in self._seen:
            self._duplicates += 1
            return
        self._seen.add(event.event_id)
        if event.effect_key != self._key:
            self._keep_refusal(f"{event.event_id}: for effect {event.effect_key!r}, not this one")
            return
        self._received.append(event.event_id)
        self._inbox.append(event)

    async def _refuse_input(self, handler: str, refused: InputRefused) -> None:
        self._keep_refusal(f"{handler} {refused.received}: {refused.reason}")

    def _keep_refusal(self, refusal: str) -> None:
        self._refused_count += 1
        if len(self._refused) < MAX_REFUSED_KEPT:
            self._refused.append(refusal)

    @workflow.query(name="state")
    def state(self) -> ReconcileProgress:
        return ReconcileProgress(
            effect_key=self._key,
            polls=self._polls,
            webhooks=list(self._received),
            duplicate_webhooks=self._duplicates,
            refused_webhooks=list(self._refused),
            refused_count=self._refused_count,
            lookup_usable=self._lookup_usable,
            last_verdict=self._last_verdict,
            result=self._result,
        )
