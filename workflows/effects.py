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

with workflow.unsafe.imports_passed_through():
    from activities.actions import ActionActivities
    from activities.reconcile import ReconcileInput, ReconcileResult
    from aios.models.manifest import ActionSpec, AgentManifest
    from aios.models.run import ActionCall, ActionResult, Proposal
    from aios.queues import connector_queue, runs_inline
    from aios.webhooks import reconcile_workflow_id
    from connectors import errors as connector_errors

ACTION_TIMEOUT = timedelta(seconds=60)
# The execute activity heartbeats every 2 s: a worker that died mid-call is noticed in 10 s.
ACTION_HEARTBEAT_TIMEOUT = timedelta(seconds=10)
ACTION_RETRY = RetryPolicy(
    initial_interval=timedelta(seconds=1),
    backoff_coefficient=2.0,
    maximum_interval=timedelta(seconds=30),
    maximum_attempts=8,
)
# After a connector's final failure the ledger may say "unknown" (some attempt may have applied
# the effect): a ReconcileEffect child reads the ledger and settles it by asking, never guessing.
RECONCILE_PATCH = "reconcile-unknown-effects"
CONNECTOR_ERRORS = frozenset(
    name
    for name, value in vars(connector_errors).items()
    if isinstance(value, type) and issubclass(value, connector_errors.ConnectorError)
)


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
            # The undo takes the parameters it declares, and what the effect returned
            # (e.g. the PaymentIntent a refund must name).
            "params": {name: value for name, value in original.params.items() if name in spec.params},
            "original": response,
        }
    )


def start_execute(call: ActionCall, *, fused: bool) -> asyncio.Future[ActionResult]:
    if fused and runs_inline(call.connector):
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
    call: ActionCall, failure: ActivityError | ApplicationError
) -> ReconcileResult | None:
    """Settle an effect the ledger calls unknown; None when there is nothing to ask about."""
    cause = failure if isinstance(failure, ApplicationError) else failure.cause
    if not (isinstance(cause, ApplicationError) and cause.type in CONNECTOR_ERRORS):
        return None
    if not workflow.patched(RECONCILE_PATCH):
        return None
    request = ReconcileInput.for_call(call)
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


def failure_cause(failure: ActivityError | ApplicationError) -> str:
    if isinstance(failure, ApplicationError):
        return str(failure)
    cause = failure.cause
    return str(cause) if cause is not None else str(failure)


def reconciled_detail(result: ReconcileResult | None) -> dict[str, Any]:
    """What a step's record says about reconciling its effect; nothing when it was not unknown."""
    if result is None or result.outcome == "not_unknown":
        return {}
    return {
        "reconciled": result.outcome,
        "resolved_by": result.resolved_by,
        "needs_operator": result.needs_operator,
    }
