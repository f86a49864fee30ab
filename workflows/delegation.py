"""Delegation: a `connector: agent` action starts another agent's run as a child workflow.

`Delegating` is the layer of AgentRun between the operator interface and the run itself.
A delegating step goes through the parent's own policy and gate like any action; then:

- the child is admitted like every run (the `delegation.admit` activity: depth and fan-out
  limits, its manifest found by name, its agent's daily budget and kill switch, the canary,
  the input's size) and started as a child AgentRun whose id derives from the parent run and
  step, caused by `run:<parent id>`. Its own policy and approvals apply: an approval inside it
  is decided on the child run, and the parent waits;
- the child may spend at most what the parent had left, and what it spent counts in the
  parent's run budget (`delegated_tokens` / `delegated_cost`);
- the parent takes the child's outcome as the action's result (or, with `wait: false`, goes on
  once the child has started);
- compensation follows nested sagas: a child that completed hands its undo list up with its
  result (`RunState.handed_up`), and those calls join the parent's saga, so a later failure
  of the parent undoes the child's effects through the child's own compensations, under their
  own effect keys (exactly once, whoever runs them). A child still running when its parent
  compensates (one nobody waited for, or one whose parent was cancelled) is cancelled, and
  compensates itself.
"""

from __future__ import annotations

import asyncio
from datetime import timedelta
from typing import Any

from temporalio import workflow
from temporalio.common import RetryPolicy, WorkflowIDReusePolicy
from temporalio.exceptions import (
    ActivityError,
    ApplicationError,
    CancelledError,
    ChildWorkflowError,
    WorkflowAlreadyStartedError,
)

from workflows.effects import failure_cause, start_execute
from workflows.operator_interface import OperatorInterface
from workflows.run_progress import ApprovedAct, RunProgress
from workflows.versions import DELEGATION_PATCH

with workflow.unsafe.imports_passed_through():
    from activities.delegation import DelegationActivities
    from aios.errors import DelegationFailed, DelegationRefused, application_error
    from aios.models.delegation import ChildAdmitted, ChildRequest
    from aios.models.manifest import AGENT_CONNECTOR, ActionSpec
    from aios.models.run import ActionCall, ActionResult, Delegation, RunInput, RunState, RunStatus
    from aios.temporal.search_attributes import run_attributes

CHILD_WORKFLOW = "AgentRun"
ADMIT_TIMEOUT = timedelta(seconds=30)
# Temporal or Postgres away for a while delays the child; a refusal is final at once.
ADMIT_RETRY = RetryPolicy(initial_interval=timedelta(seconds=1), maximum_interval=timedelta(seconds=30))

ChildHandle = workflow.ChildWorkflowHandle[Any, RunState]


class Delegating(OperatorInterface):
    def __init__(self, request: RunInput, run: RunProgress) -> None:
        super().__init__(request, run)
        # The children nobody waited for, by run id, to cancel or undo on compensation. This
        # history only: after a continue-as-new a child is reached by its id (see _undo_child).
        self._detached: dict[str, ChildHandle] = {}

    def _delegates(self, spec: ActionSpec) -> bool:
        return spec.delegates and workflow.patched(DELEGATION_PATCH)

    async def _delegate(self, act: ApprovedAct) -> ActionResult:
        """Admit and start the child; its outcome (or, not waited for, its start) is the result.

        Raises ApplicationError (DelegationRefused, DelegationFailed) when the step fails, and
        asyncio.CancelledError when this run was cancelled while its child ran."""
        admitted = await self._admit_child(act)
        self._run.children += 1
        handle = await self._start_child(act, admitted)
        step, child_id = f"step-{act.call.step}", admitted.run_id
        detail = {"child_run_id": child_id, "agent": admitted.input.agent, "wait": act.spec.wait}
        self._event(step, "policy", act.call.action, "delegated", detail=detail)
        if not act.spec.wait:
            self._detached[child_id] = handle
            self._run.saga.add(_child_undo(act.call, child_id))
            return ActionResult(status="succeeded", response={**detail, "status": "started"})
        workflow.set_current_details(f"{self._details()}\n\nwaiting for child run {child_id}")
        state = await self._child_result(handle, child_id)
        workflow.set_current_details(self._details())
        return self._took_over(act, child_id, state)

    async def _admit_child(self, act: ApprovedAct) -> ChildAdmitted:
        assert act.spec.agent is not None  # the manifest's validator requires it
        request = ChildRequest(
            parent_run_id=self._run.run_id,
            parent_agent=self._run.request.agent,
            step=act.call.step,
            action=act.call.action,
            agent=act.spec.agent,
            task=child_task(act.call),
            delegation=self._child_delegation(),
            children=self._run.children,
            task_queue=workflow.info().task_queue,
        )
        try:
            return await workflow.execute_activity_method(
                DelegationActivities.admit,
                request,
                start_to_close_timeout=ADMIT_TIMEOUT,
                retry_policy=ADMIT_RETRY,
            )
        except ActivityError as failure:
            raise self._refused(act, failure_cause(failure)) from None

    def _child_delegation(self) -> Delegation:
        """The child's depth, and what this run has left to spend: the child may spend no more."""
        run, budget, own = self._run, self._manifest.budget, self._run.request.delegation
        spent_tokens, spent_cost = run.tokens + run.delegated_tokens, run.cost + run.delegated_cost
        tokens = budget.tokens_per_run + run.extra_tokens - spent_tokens
        cost = budget.cost_per_run + run.extra_cost - spent_cost
        if own is not None:  # this run is a child itself: its parent's ceiling holds too
            tokens = min(tokens, own.ceiling_tokens - spent_tokens)
            cost = min(cost, own.ceiling_cost - spent_cost)
        return Delegation(
            parent_run_id=run.run_id,
            depth=(own.depth if own is not None else 0) + 1,
            ceiling_tokens=max(0, tokens),
            ceiling_cost=max(0.0, round(cost, 6)),
        )

    async def _start_child(self, act: ApprovedAct, admitted: ChildAdmitted) -> ChildHandle:
        child = admitted.input
        try:
            return await workflow.start_child_workflow(
                CHILD_WORKFLOW,
                child,
                id=admitted.run_id,
                task_queue=workflow.info().task_queue,
                result_type=RunState,
                search_attributes=run_attributes(child),
                static_summary=admitted.summary,
                # Effect keys derive from the run id: a reused id would find its effects "done".
                id_reuse_policy=WorkflowIDReusePolicy.REJECT_DUPLICATE,
                # A child waited for goes with its parent (a terminated parent's child is cancelled
                # and compensates itself); one nobody waits for outlives it.
                parent_close_policy=workflow.ParentClosePolicy.REQUEST_CANCEL
                if act.spec.wait
                else workflow.ParentClosePolicy.ABANDON,
            )
        except WorkflowAlreadyStartedError:
            reason = f"child run id {admitted.run_id!r} is taken; no child was started"
            raise self._refused(act, reason) from None

    def _refused(self, act: ApprovedAct, reason: str) -> ApplicationError:
        """The step's one-line refusal, in the audit trail and as its failure."""
        step = f"step-{act.call.step}"
        self._event(step, "policy", act.call.action, "delegation refused", rationale=reason)
        return application_error(DelegationRefused, reason, non_retryable=True)

    async def _child_result(self, handle: ChildHandle, child_id: str) -> RunState:
        try:
            return await handle
        except ChildWorkflowError as failure:
            if workflow.cancellation_reason() is not None:
                # This run was cancelled: its child was cancelled with it and compensated itself.
                raise asyncio.CancelledError("cancelled by the operator") from None
            cause = failure.cause if failure.cause is not None else failure
            raise application_error(
                DelegationFailed, f"child run {child_id} did not finish: {cause}", non_retryable=True
            ) from None

    def _took_over(self, act: ApprovedAct, child_id: str, state: RunState) -> ActionResult:
        """The child's spend joins this run's, its undo this run's saga; its summary is the result."""
        run = self._run
        run.delegated_tokens += state.tokens_spent + state.delegated_tokens
        run.delegated_cost += state.cost_spent + state.delegated_cost
        if state.status is not RunStatus.COMPLETED:
            raise application_error(
                DelegationFailed,
                f"child run {child_id} ({state.agent}) ended {state.status.value}: {state.outcome}",
                non_retryable=True,
            )
        for undo in state.handed_up:
            run.saga.add(undo.model_copy(update={"step": act.call.step}))
        return ActionResult(status="succeeded", response=child_summary(child_id, state))

    def _cancelled_meanwhile(self) -> None:
        """A cancel that arrived while a child ran went to the child; if the child finished anyway,
        this run must still end as cancelled."""
        if workflow.cancellation_reason() is not None:
            raise asyncio.CancelledError("cancelled by the operator")

    async def _undo_child(self, call: ActionCall) -> None:
        """Compensate a child nobody waited for: cancel it if it runs (it compensates itself),
        undo its handed-up effects if it completed."""
        child_id = call.target
        assert child_id is not None
        handle = self._detached.get(child_id)
        if handle is None:
            # The handle went with an earlier history: cancel by id. A child that has ended meanwhile
            # refuses, and the undo is reported failed: the operator is told, nothing is guessed.
            await workflow.get_external_workflow_handle(child_id).cancel()
            return
        if not handle.done():
            handle.cancel()
        try:
            state = await handle
        except ChildWorkflowError as failure:
            if isinstance(failure.cause, CancelledError):
                return  # cancelled: it ran its own compensation
            raise
        for undo in state.handed_up:
            await start_execute(undo, fused=self._run.fused)

    def _final_state(self) -> RunState:
        """What the run returns: a completed child also hands its undo up to its parent."""
        state = self._run.snapshot()
        if state.status is RunStatus.COMPLETED and self._run.request.delegation is not None:
            return state.model_copy(update={"handed_up": self._run.saga.pending})
        return state


def child_task(call: ActionCall) -> dict[str, Any]:
    """The child's task: the delegating action's parameters (and its amount)."""
    task = dict(call.params)
    if call.amount is not None:
        task.setdefault("amount", call.amount)
    return task


def child_summary(child_id: str, state: RunState) -> dict[str, Any]:
    """The delegating action's result: how the child ended, and its steps."""
    return {
        "child_run_id": child_id,
        "agent": state.agent,
        "status": state.status.value,
        "outcome": state.outcome,
        "steps": [{"step": s.step, "action": s.action, "status": s.status} for s in state.steps],
        "tokens": state.tokens_spent + state.delegated_tokens,
        "cost": round(state.cost_spent + state.delegated_cost, 6),
    }


def _child_undo(call: ActionCall, child_id: str) -> ActionCall:
    """The saga's entry for a child nobody waited for: cancel it, or undo what it handed up."""
    key = f"{call.effect_key}/undo/child"
    return call.model_copy(update={"effect_key": key, "connector": AGENT_CONNECTOR, "target": child_id})
