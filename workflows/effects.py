"""How an approved action reaches the world, how it is undone, how an unsure one is settled.

Every call carries an effect key made of the run id, the step and the action, so a retry or
a crashed worker replays the ledger's answer instead of repeating the effect. Inline
connectors run as local activities inside the workflow task (when bookkeeping is fused),
the others on their connector's own task queue. No run state here: the workflow records.
"""

from __future__ import annotations

import asyncio
from datetime import timedelta
from typing import Any

from temporalio import workflow
from temporalio.common import RetryPolicy
from temporalio.exceptions import (
    ActivityError,
    ApplicationError,
    ChildWorkflowError,
    WorkflowAlreadyStartedError,
)

from workflows.reconcile import ReconcileEffectWorkflow
from workflows.versions import OPERATOR_SETTLES_PATCH, RECONCILE_PATCH

with workflow.unsafe.imports_passed_through():
    from activities.actions import EXECUTE_ATTEMPTS, ActionActivities
    from activities.reconcile import LedgerReading, ReconcileActivities, ReconcileInput, ReconcileResult
    from aios.ledger.webhooks import reconcile_workflow_id
    from aios.models.manifest import ActionSpec, AgentManifest
    from aios.models.run import ActionCall, ActionResult, Proposal
    from aios.temporal.queues import connector_queue, runs_inline
    from connectors.errors import CONNECTOR_ERRORS

ACTION_TIMEOUT = timedelta(seconds=60)
# The execute activity heartbeats every 0.3 s: a worker that died mid-call is noticed within
# 1.5 s (plus the server's timer lag), and the call is retried 0.25 s later on a live worker
# (docs/RELIABILITY.md, recovery column). Ten attempts keep the give-up horizon at ~90 s, past
# a breaker's 30 s cool-down, as eight attempts from 1 s did. Timeouts and retries are activity
# options, not commands: changing them needs no patch.
ACTION_HEARTBEAT_TIMEOUT = timedelta(seconds=1.5)
ACTION_RETRY = RetryPolicy(
    initial_interval=timedelta(seconds=0.25),
    backoff_coefficient=2.0,
    maximum_interval=timedelta(seconds=30),
    maximum_attempts=EXECUTE_ATTEMPTS,
)
LEDGER_READ_TIMEOUT = timedelta(seconds=30)
# The operator's answer is in the ledger: reading it is retried until Postgres answers.
LEDGER_READ_RETRY = RetryPolicy(initial_interval=timedelta(seconds=1), maximum_interval=timedelta(seconds=30))
# The failure types a connector sends (its error classes' names): only those may be in doubt.
CONNECTOR_FAILURES = frozenset(error.__name__ for error in CONNECTOR_ERRORS)


def action_call(run_id: str, proposal: Proposal, spec: ActionSpec) -> ActionCall:
    return ActionCall.for_step(run_id, proposal.step, proposal.proposed, spec)


def compensation_call(
    manifest: AgentManifest, original: ActionCall, compensation: str, response: dict[str, Any]
) -> ActionCall:
    spec = manifest.actions[compensation]
    return original.model_copy(
        update={
            "effect_key": f"{original.effect_key}/undo/{compensation}",
            "action": compensation,
            "connector": spec.connector,
            "target": spec.target,
            "inline": spec.inline,
            # The undo takes the parameters it declares, and what the effect returned
            # (e.g. the PaymentIntent a refund must name).
            "params": {name: value for name, value in original.params.items() if name in spec.params},
            "original": response,
        }
    )


def start_execute(call: ActionCall, *, fused: bool) -> asyncio.Future[ActionResult]:
    if fused and runs_inline(call.connector, inline=call.inline):
        return workflow.start_local_activity_method(
            ActionActivities.execute,
            call,
            start_to_close_timeout=ACTION_TIMEOUT,
            retry_policy=ACTION_RETRY,
        )
    return workflow.start_activity_method(
        ActionActivities.execute,
        call,
        task_queue=connector_queue(workflow.info().task_queue, call.connector),
        start_to_close_timeout=ACTION_TIMEOUT,
        heartbeat_timeout=ACTION_HEARTBEAT_TIMEOUT,
        retry_policy=ACTION_RETRY,
    )


async def reconcile_effect(
    call: ActionCall, failure: ActivityError | ApplicationError, *, within: timedelta | None = None
) -> ReconcileResult | None:
    """Settle an effect the ledger calls unknown; None when there is nothing to ask about.

    `within`: how long the reconciler asks before it gives up (default: its own, an hour).
    """
    cause = failure if isinstance(failure, ApplicationError) else failure.cause
    if not (isinstance(cause, ApplicationError) and cause.type in CONNECTOR_FAILURES):
        return None
    if not workflow.patched(RECONCILE_PATCH):
        return None
    request = ReconcileInput.for_call(call, **({"max_duration": within} if within else {}))
    try:
        # The reconciler settles the ledger whatever becomes of this run: it is abandoned,
        # not cancelled or terminated, with the run.
        return await workflow.execute_child_workflow(
            ReconcileEffectWorkflow.run,
            request,
            id=reconcile_workflow_id(call.effect_key),
            parent_close_policy=workflow.ParentClosePolicy.ABANDON,
            cancellation_type=workflow.ChildWorkflowCancellationType.ABANDON,
        )
    except (ChildWorkflowError, WorkflowAlreadyStartedError):
        return None


def in_doubt(result: ReconcileResult) -> bool:
    """The reconciler gave up with the ledger still unknown: the operator must answer.
    (Runs from before this was handled compensated instead; they replay the same way.)"""
    return result.outcome == "unresolved" and workflow.patched(OPERATOR_SETTLES_PATCH)


async def read_ledger(effect_key: str) -> LedgerReading:
    return await workflow.execute_activity_method(
        ReconcileActivities.read_ledger,
        effect_key,
        start_to_close_timeout=LEDGER_READ_TIMEOUT,
        retry_policy=LEDGER_READ_RETRY,
    )


def settled_by_operator(effect_key: str, reading: LedgerReading) -> ReconcileResult:
    """The outcome the operator wrote to the ledger, as a reconciler's result."""
    state = reading.ledger_state
    assert state in ("succeeded", "failed")
    who = reading.resolved_by or "someone else"
    return ReconcileResult(
        effect_key=effect_key,
        outcome=state,
        resolved_by="operator",
        ledger_state=state,
        response=reading.response,
        error=reading.error,
        detail=f"settled by {who}" + (f": {reading.resolution_note}" if reading.resolution_note else ""),
    )


def failure_cause(failure: ActivityError | ApplicationError) -> str:
    if isinstance(failure, ApplicationError):
        return str(failure)
    cause = failure.cause
    return str(cause) if cause is not None else str(failure)


def reconciled_detail(result: ReconcileResult | None) -> dict[str, Any]:
    """What a step's record says about reconciling its effect; nothing when it was not unknown."""
    if result is None or result.outcome == "not_unknown":
        return {}
    detail: dict[str, Any] = {
        "reconciled": result.outcome,
        "resolved_by": result.resolved_by,
        "needs_operator": result.needs_operator,
    }
    if result.resolved_by == "operator":
        detail["operator"] = result.detail
    return detail
