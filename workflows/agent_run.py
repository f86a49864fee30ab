"""The agent run: plan with a model, grade each action, gate, act, compensate, record.

Everything here is deterministic: time, ids and waiting go through the `workflow` API,
every effect goes through an activity, and the policy is a pure function. The operator
talks to a run through signals (Web UI), an update (CLI) and the `state` query.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from datetime import timedelta
from typing import Any, Literal, TypeVar

from temporalio import workflow
from temporalio.common import RawValue, RetryPolicy
from temporalio.exceptions import (
    ActivityError,
    ApplicationError,
    CancelledError,
    ChildWorkflowError,
    FailureError,
    WorkflowAlreadyStartedError,
)

from workflows.reconcile import ReconcileEffectWorkflow
from workflows.saga import Saga

with workflow.unsafe.imports_passed_through():
    from pydantic import BaseModel, ValidationError

    from activities.actions import ActionActivities
    from activities.agent import AgentActivities
    from activities.memory import MemoryActivities
    from activities.reconcile import ReconcileInput, ReconcileResult
    from aios.memory.messages import MemoryRecallRequest
    from aios.models.manifest import ActionSpec, Grade, RiskClass
    from aios.models.run import (
        ActionCall,
        ActionResult,
        AuditEventRef,
        BudgetRequest,
        Decision,
        DecisionOutcome,
        DecisionRequest,
        PendingApproval,
        PlanRequest,
        PlanResponse,
        Proposal,
        ProposedAction,
        RecallRequest,
        RecordRequest,
        RefusedDecision,
        ResumeRequest,
        RunCarry,
        RunInput,
        RunState,
        RunStatus,
        Settlement,
        SlotRequest,
        StepRecord,
        StepStatus,
        ThinkRequest,
        ThinkResult,
    )
    from aios.policy import grade_action, may_approve
    from aios.queues import connector_queue, runs_inline
    from aios.search_attributes import RISK_KEY, STATE_KEY
    from aios.webhooks import reconcile_workflow_id
    from connectors import errors as connector_errors


BOOKKEEPING_TIMEOUT = timedelta(seconds=30)
# A real model on a CPU can take minutes, with the connector's own retries on top.
THINK_TIMEOUT = timedelta(minutes=5)
ACTION_TIMEOUT = timedelta(seconds=60)
# The execute activity heartbeats every 2 s: a worker that died mid-call is noticed in 10 s.
ACTION_HEARTBEAT_TIMEOUT = timedelta(seconds=10)
ACTION_RETRY = RetryPolicy(
    initial_interval=timedelta(seconds=1),
    backoff_coefficient=2.0,
    maximum_interval=timedelta(seconds=30),
    maximum_attempts=8,
)
# A busy agent's runs wait for a slot by retrying, which keeps them queued, never dropped.
SLOT_RETRY = RetryPolicy(
    initial_interval=timedelta(seconds=1), backoff_coefficient=1.5, maximum_interval=timedelta(seconds=15)
)
RECEIVED_EXCERPT = 300
# After a connector's final failure the ledger may say "unknown" (some attempt may have applied
# the effect): a ReconcileEffect child reads the ledger and settles it by asking, never guessing.
RECONCILE_PATCH = "reconcile-unknown-effects"
MEMORY_RECALL_PATCH = "memory-recall"
# Cheap work stays inside the workflow task: slot, recall and inline connectors run as local
# activities, and a step's bookkeeping (settlement, state mirror, audit rows) rides in the
# next turn's reservation transaction instead of three transactions of its own.
FUSED_BOOKKEEPING_PATCH = "fused-bookkeeping"
# One quick try in the workflow task; a busy agent's run then queues on the regular activity.
SLOT_FAST_TRY = RetryPolicy(maximum_attempts=1)
ACKNOWLEDGE_PAUSE = timedelta(milliseconds=1)
# A long run hands its state to a fresh history (same workflow id) before Temporal's limits,
# and ends its workflow task every CHECKPOINT_TURNS turns: inline steps otherwise keep one
# task open, which delays queries and holds every step's marker for a single large commit.
CONTINUE_AS_NEW_PATCH = "continue-as-new"
# An approved inline act rides in the next think: one local activity per step instead of two.
ACT_IN_THINK_PATCH = "act-in-think"
CHECKPOINT_TURNS = 50
DECIDE_SHAPE = (
    '{"verdict": "approve" | "reject", "decision": {"approver": "<name>", "note": "", "step": null}}'
)
CONNECTOR_ERRORS = frozenset(
    name
    for name, value in vars(connector_errors).items()
    if isinstance(value, type) and issubclass(value, connector_errors.ConnectorError)
)

Verdict = Literal["approve", "reject"]
ModelT = TypeVar("ModelT", bound=BaseModel)
T = TypeVar("T")


class RunAborted(Exception):
    """The run cannot go on (an action was rejected); finished steps are compensated."""


@dataclass(frozen=True)
class ApprovedAct:
    """An action the policy or a person approved, with the call that performs it."""

    proposal: Proposal
    spec: ActionSpec
    decided_by: str
    call: ActionCall


class PauseRequest(BaseModel):
    by: str = "operator"
    reason: str = ""


class RunProgress:
    """Mutable working state of one run; `snapshot()` turns it into the frozen RunState."""

    def __init__(self, request: RunInput, run_id: str) -> None:
        self.request = request
        self.run_id = run_id
        self.status = RunStatus.QUEUED
        self.turn = 0
        self.step = 0
        self.proposals: list[Proposal] = []
        self.steps: list[StepRecord] = []
        self.refused: list[RefusedDecision] = []
        self.pending: PendingApproval | None = None
        self.tokens = 0
        self.cost = 0.0
        self.highest_risk: RiskClass | None = None
        self.outcome = ""
        self.recalled: list[str] = []

    def restore(self, state: RunState) -> None:
        """Take up where the previous run of the chain stopped (continue-as-new)."""
        self.status = state.status
        self.turn = state.turn
        self.proposals = list(state.proposals)
        self.steps = list(state.steps)
        self.refused = list(state.refused_decisions)
        self.tokens = state.tokens_spent
        self.cost = state.cost_spent
        self.highest_risk = None if state.highest_risk == "none" else RiskClass(state.highest_risk)
        self.outcome = state.outcome
        self.recalled = list(state.recalled)

    def snapshot(self) -> RunState:
        return RunState(
            run_id=self.run_id,
            agent=self.request.agent,
            manifest_version=self.request.manifest.version,
            mode=self.request.mode,
            status=self.status,
            turn=self.turn,
            pending_approval=self.pending,
            proposals=list(self.proposals),
            steps=list(self.steps),
            refused_decisions=list(self.refused),
            recalled=list(self.recalled),
            tokens_spent=self.tokens,
            cost_spent=round(self.cost, 6),
            highest_risk=self.highest_risk.value if self.highest_risk else "none",
            outcome=self.outcome,
        )


@workflow.defn(name="AgentRun")
class AgentRunWorkflow:
    @workflow.init
    def __init__(self, request: RunInput) -> None:
        self._run = RunProgress(request, workflow.info().workflow_id)
        self._manifest = request.manifest
        self._verdict: tuple[Verdict, str, str] | None = None
        self._paused = request.start_paused
        self._resumes = 0
        self._extra_tokens = 0
        self._extra_cost = 0.0
        self._events: list[AuditEventRef] = []
        self._event_count = 0
        self._cancelled = False
        self._fused = False
        self._may_continue = False
        self._act_in_think = False
        self._unsettled: Settlement | None = None
        # An approved inline act waits for the next `think`, which performs it first: one local
        # activity per step instead of two. Anything that waits performs it on its own first.
        self._deferred: ApprovedAct | None = None
        self._saga: Saga[ActionCall] = Saga()
        if request.continued is not None:
            self._restore(request.continued)

    def _restore(self, carry: RunCarry) -> None:
        self._run.restore(carry.state)
        self._run.step = carry.step
        self._paused = carry.paused
        self._resumes = carry.resumes
        self._extra_tokens = carry.extra_tokens
        self._extra_cost = carry.extra_cost
        self._event_count = carry.event_count

    # -- the run --------------------------------------------------------------------------

    @workflow.run
    async def run(self, request: RunInput) -> RunState:
        saga = self._saga
        self._fused = workflow.patched(FUSED_BOOKKEEPING_PATCH)
        self._may_continue = workflow.patched(CONTINUE_AS_NEW_PATCH)
        self._act_in_think = workflow.patched(ACT_IN_THINK_PATCH)
        slot = SlotRequest(
            agent=request.agent, run_id=self._run.run_id, limit=self._manifest.budget.max_concurrent_runs
        )
        try:
            if request.continued is None:
                self._event("run", "operator", "start", "started", detail={"mode": request.mode})
                await self._acquire_slot(slot)
                self._set_status(RunStatus.RUNNING)
                self._run.recalled = await self._recall()
            else:
                # The slot is still held and the memories recalled: the carry has them.
                for compensation in request.continued.compensations:
                    saga.add(compensation)
                workflow.set_current_details(self._details())
            await self._turns(saga)
            self._finish(RunStatus.COMPLETED, self._run.outcome or "done")
        except RunAborted as abort:
            await self._compensate(saga, str(abort))
        except ActivityError as failure:
            await self._compensate(saga, f"a step failed: {_cause(failure)}")
        except ApplicationError as failure:
            # A local activity's final failure arrives as its ApplicationError, unwrapped.
            # Runs from before fused bookkeeping failed here; they must replay the same way.
            if not self._fused:
                raise
            await self._compensate(saga, f"a step failed: {_cause(failure)}")
        except asyncio.CancelledError:
            self._cancelled = True
            await self._compensate(saga, "cancelled by the operator")
        await self._wrap_up(slot)
        if self._cancelled:
            # Ends as Cancelled in Temporal, after compensating and recording everything.
            raise asyncio.CancelledError("cancelled by the operator")
        return self._run.snapshot()

    async def _acquire_slot(self, slot: SlotRequest) -> None:
        if self._fused:
            try:
                await workflow.execute_local_activity_method(
                    AgentActivities.acquire_slot,
                    slot,
                    start_to_close_timeout=BOOKKEEPING_TIMEOUT,
                    retry_policy=SLOT_FAST_TRY,
                )
                return
            except FailureError as busy:
                if isinstance(busy, CancelledError) or isinstance(busy.cause, CancelledError):
                    raise
        await workflow.execute_activity_method(
            AgentActivities.acquire_slot,
            slot,
            start_to_close_timeout=BOOKKEEPING_TIMEOUT,
            retry_policy=SLOT_RETRY,
        )

    async def _turns(self, saga: Saga[ActionCall]) -> None:
        for turn in range(self._run.turn + 1, self._manifest.turn_limit + 1):
            await self._checkpoint(turn, saga)
            self._run.turn = turn
            await self._hold_while_paused()
            plan = await self._think(turn, self._run.recalled)
            if plan.done:
                self._run.outcome = plan.text
                return
            for index, proposed in enumerate(plan.proposals, start=1):
                await self._hold_while_paused()
                # Only a turn's last action waits for the next think; a later turn must come.
                last = index == len(plan.proposals) and turn < self._manifest.turn_limit
                await self._handle(proposed, may_defer=last)
        self._run.outcome = f"stopped at the turn limit ({self._manifest.turn_limit})"

    async def _checkpoint(self, turn: int, saga: Saga[ActionCall]) -> None:
        """Between turns: end the workflow task now and then; continue as new when long."""
        if not self._may_continue:
            return
        if turn % CHECKPOINT_TURNS == 0:
            await workflow.sleep(ACKNOWLEDGE_PAUSE)
        info = workflow.info()
        long = info.get_current_history_length() >= self._run.request.max_history_events
        if long or info.is_continue_as_new_suggested():
            await self._continue_as_new(saga)

    async def _continue_as_new(self, saga: Saga[ActionCall]) -> None:
        await self._perform_deferred()
        await self._record()  # what happened so far is written before the history is closed
        await workflow.wait_condition(workflow.all_handlers_finished)
        request = self._run.request
        previous = request.continued.continuations if request.continued else 0
        carry = RunCarry(
            state=self._run.snapshot(),
            step=self._run.step,
            paused=self._paused,
            resumes=self._resumes,
            extra_tokens=self._extra_tokens,
            extra_cost=self._extra_cost,
            event_count=self._event_count,
            compensations=saga.pending,
            continuations=previous + 1,
        )
        workflow.continue_as_new(request.model_copy(update={"continued": carry, "start_paused": False}))

    async def _recall(self) -> list[str]:
        """Long-term memories about the task's subject, then earlier runs, within the budget."""
        request, manifest = self._run.request, self._manifest
        if workflow.patched(MEMORY_RECALL_PATCH):
            recall = MemoryRecallRequest.for_task(
                agent=request.agent,
                task=request.task,
                top_k=manifest.memory.top_k,
                token_budget=manifest.memory.token_budget,
                as_of=workflow.now(),
                run_id=workflow.info().workflow_id,
            )
            if self._fused:
                recalled = await workflow.execute_local_activity_method(
                    MemoryActivities.recall, recall, start_to_close_timeout=BOOKKEEPING_TIMEOUT
                )
            else:
                recalled = await workflow.execute_activity_method(
                    MemoryActivities.recall, recall, start_to_close_timeout=BOOKKEEPING_TIMEOUT
                )
            return recalled.memories
        # Runs started before long-term memory recall only their run history.
        history = await workflow.execute_activity_method(
            AgentActivities.recall,
            RecallRequest(
                agent=request.agent,
                task=request.task,
                top_k=manifest.memory.top_k,
                token_budget=manifest.memory.token_budget,
            ),
            start_to_close_timeout=BOOKKEEPING_TIMEOUT,
        )
        return history.memories

    async def _think(self, turn: int, memories: list[str]) -> PlanResponse:
        while True:
            budget = self._budget_request(turn)
            deferred, self._deferred = self._deferred, None
            request = ThinkRequest(
                plan=self._plan_request(turn, memories, deferred),
                budget=budget,
                record=self._record_request() if self._fused else None,
                settle_later=self._fused,
                act=deferred.call if deferred else None,
            )
            result = await self._start_think(request, deferred)
            if deferred is not None:
                self._acted(deferred, result.acted)
            plan = result.plan
            if plan is not None:
                self._run.tokens += plan.tokens_used
                self._run.cost += plan.cost
                if self._fused:
                    self._unsettled = Settlement(
                        reservation_key=budget.reservation_key, tokens=plan.tokens_used, cost=plan.cost
                    )
                return plan
            await self._pause_for_budget(result.grant.reason)

    async def _start_think(self, request: ThinkRequest, deferred: ApprovedAct | None) -> ThinkResult:
        try:
            return await workflow.execute_local_activity_method(
                AgentActivities.think, request, start_to_close_timeout=THINK_TIMEOUT
            )
        except ApplicationError:
            if deferred is not None:
                # The act may have run before the model failed: learn its outcome from the
                # ledger (a replay, never a second effect), so compensation can undo it.
                self._deferred = deferred
                await self._perform_deferred()
            raise

    def _acted(self, act: ApprovedAct, result: ActionResult | None) -> None:
        if result is None:
            raise ApplicationError("think returned no outcome for its act", type="ActMissing")
        if result.status == "failed":
            self._step_failed(act, result.error, None)
            raise ApplicationError(result.error, type=result.error_type or "ActionFailed", non_retryable=True)
        self._step_done(act, result, None)

    async def _perform_deferred(self) -> None:
        """Perform a deferred act now, as its own local activity, before anything waits."""
        deferred, self._deferred = self._deferred, None
        if deferred is not None:
            await self._perform(deferred)

    async def _pause_for_budget(self, reason: str) -> None:
        # Counted before recording: a resume sent the moment the pause is visible must count.
        resumes = self._resumes
        self._event(f"turn-{self._run.turn}", "policy", "budget", "paused", rationale=reason)
        self._set_status(RunStatus.PAUSED_BUDGET)
        await self._record()
        await workflow.wait_condition(lambda: self._resumes > resumes)
        await self._acknowledge()
        self._set_status(RunStatus.RUNNING)

    def _plan_request(self, turn: int, memories: list[str], act: ApprovedAct | None) -> PlanRequest:
        done = [step.action for step in self._run.steps]
        return PlanRequest(
            run_id=self._run.run_id,
            turn=turn,
            manifest=self._manifest,
            task=self._run.request.task,
            # The act is performed before the model is asked; a failure ends the run anyway.
            done_actions=[*done, act.call.action] if act else done,
            context=memories,
        )

    def _budget_request(self, turn: int) -> BudgetRequest:
        budget, model = self._manifest.budget, self._manifest.model
        estimate = model.tokens_per_turn_estimate
        return BudgetRequest(
            agent=self._run.request.agent,
            run_id=self._run.run_id,
            reservation_key=f"{self._run.run_id}/turn-{turn}",
            tokens=estimate,
            cost=estimate / 1000 * model.cost_per_1k_tokens,
            tokens_per_run=budget.tokens_per_run + self._extra_tokens,
            cost_per_run=budget.cost_per_run + self._extra_cost,
            tokens_per_day=budget.tokens_per_day,
            cost_per_day=budget.cost_per_day,
        )

    # -- one proposed action --------------------------------------------------------------

    async def _handle(self, proposed: ProposedAction, *, may_defer: bool) -> None:
        self._run.step += 1
        step = self._run.step
        verdict = grade_action(self._manifest, proposed)
        proposal = Proposal(
            step=step,
            turn=self._run.turn,
            proposed=proposed,
            grade=verdict.grade,
            grade_reason=verdict.reason,
        )
        self._run.proposals.append(proposal)
        spec = self._manifest.actions.get(proposed.action)
        self._note_risk(spec)
        self._event(
            f"step-{step}",
            "agent",
            proposed.action,
            f"proposed:{verdict.grade.value}",
            rationale=proposed.rationale,
            detail={"confidence": proposed.confidence, "amount": proposed.amount, "policy": verdict.reason},
        )
        if verdict.grade is Grade.FORBIDDEN or spec is None:
            self._add_step(
                step, proposed.action, verdict.grade, "forbidden", detail={"reason": verdict.reason}
            )
            await self._step_recorded()
            return
        # Shadow runs only record what the policy would have done: nothing to approve or run.
        if self._run.request.mode == "shadow":
            self._add_step(step, proposed.action, verdict.grade, "shadowed", decided_by="shadow")
            await self._step_recorded()
            return
        decided_by = "policy"
        if verdict.grade is Grade.NEEDS_APPROVAL:
            approved, decided_by = await self._gate(step, proposed)
            if not approved:
                self._add_step(step, proposed.action, verdict.grade, "rejected", decided_by=decided_by)
                raise RunAborted(f"step {step} ({proposed.action}) was rejected by {decided_by}")
            await self._hold_while_paused()  # a pause sent while waiting holds the approved action
        await self._act(proposal, spec, decided_by, may_defer=may_defer)

    async def _act(self, proposal: Proposal, spec: ActionSpec, decided_by: str, *, may_defer: bool) -> None:
        proposed = proposal.proposed
        call = ActionCall(
            run_id=self._run.run_id,
            step=proposal.step,
            effect_key=f"{self._run.run_id}/step-{proposal.step}/{proposed.action}",
            action=proposed.action,
            connector=spec.connector,
            params=proposed.params,
            amount=proposed.amount,
            target=spec.target,
        )
        act = ApprovedAct(proposal, spec, decided_by, call)
        if may_defer and self._act_in_think and self._fused and runs_inline(call.connector):
            self._deferred = act
            return
        await self._perform(act)

    async def _perform(self, act: ApprovedAct) -> None:
        reconciled: ReconcileResult | None = None
        try:
            result = await self._execute(act.call)
        except (ActivityError, ApplicationError) as failure:  # regular or local activity
            reconciled = await self._reconcile(act.call, failure)
            if reconciled is None or reconciled.outcome != "succeeded":
                self._step_failed(act, _cause(failure), reconciled)
                raise
            result = ActionResult(status="succeeded", response=reconciled.response)
        self._step_done(act, result, reconciled)
        await self._step_recorded()

    def _step_failed(self, act: ApprovedAct, error: str, reconciled: ReconcileResult | None) -> None:
        self._add_step(
            act.proposal.step,
            act.call.action,
            act.proposal.grade,
            "failed",
            decided_by=act.decided_by,
            effect_key=act.call.effect_key,
            detail={"error": error, **_reconciled(reconciled)},
        )

    def _step_done(self, act: ApprovedAct, result: ActionResult, reconciled: ReconcileResult | None) -> None:
        step, proposed, grade, call = act.proposal.step, act.proposal.proposed, act.proposal.grade, act.call
        if act.spec.compensation is not None:
            self._saga.add(self._compensation_call(call, act.spec.compensation, result.response))
        self._add_step(
            step,
            proposed.action,
            grade,
            "executed",
            decided_by=act.decided_by,
            effect_key=call.effect_key,
            detail={"replayed": result.replayed, **_reconciled(reconciled)},
        )
        if grade is Grade.AUTO_AND_NOTIFY:
            self._event(
                f"step-{step}",
                "policy",
                "notify",
                "operator notified",
                rationale=f"{proposed.action} ran without approval; the policy asks to tell you",
            )

    async def _reconcile(
        self, call: ActionCall, failure: ActivityError | ApplicationError
    ) -> ReconcileResult | None:
        """Settle an effect the ledger calls unknown; None when there is nothing to ask about."""
        cause = failure if isinstance(failure, ApplicationError) else failure.cause
        if not (isinstance(cause, ApplicationError) and cause.type in CONNECTOR_ERRORS):
            return None
        if not workflow.patched(RECONCILE_PATCH):
            return None
        request = ReconcileInput(
            effect_key=call.effect_key,
            run_id=call.run_id,
            connector=call.connector,
            action=call.action,
            params=call.params,
            amount=call.amount,
            target=call.target,
            original=call.original,
        )
        try:
            # The reconciler settles the ledger whatever becomes of this run: it is abandoned,
            # not cancelled or terminated, with the run.
            result = await workflow.execute_child_workflow(
                ReconcileEffectWorkflow.run,
                request,
                id=reconcile_workflow_id(call.effect_key),
                parent_close_policy=workflow.ParentClosePolicy.ABANDON,
                cancellation_type=workflow.ChildWorkflowCancellationType.ABANDON,
            )
        except (ChildWorkflowError, WorkflowAlreadyStartedError):
            return None
        if result.outcome != "not_unknown":
            self._event(
                f"step-{call.step}",
                "reconciler",
                call.action,
                f"reconciled:{result.outcome}",
                rationale=result.detail,
                detail=_reconciled(result),
            )
        return result

    def _compensation_call(
        self, original: ActionCall, compensation: str, response: dict[str, Any]
    ) -> ActionCall:
        spec = self._manifest.actions[compensation]
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

    async def _compensate(self, saga: Saga[ActionCall], reason: str) -> None:
        self._set_status(RunStatus.COMPENSATING)
        self._event("saga", "policy", "compensate", "started", rationale=reason)
        outcomes = await saga.compensate(self._run_compensation)
        failed = [outcome.compensation.step for outcome in outcomes if not outcome.succeeded]
        for outcome in outcomes:
            call = outcome.compensation
            status: StepStatus = "compensated" if outcome.succeeded else "compensation_failed"
            self._add_step(call.step, call.action, Grade.AUTO, status, effect_key=call.effect_key)
        if failed:
            self._finish(RunStatus.NEEDS_OPERATOR, f"{reason}; compensation failed for steps {failed}")
        else:
            self._finish(RunStatus.COMPENSATED, reason)

    async def _run_compensation(self, call: ActionCall) -> None:
        await self._despite_cancellation(self._start_execute(call))

    async def _despite_cancellation(self, work: asyncio.Future[T]) -> T:
        """Undo and bookkeeping are never abandoned halfway: a cancel waits for them to finish."""
        try:
            return await asyncio.shield(work)
        except asyncio.CancelledError:
            self._cancelled = True
            return await work

    async def _execute(self, call: ActionCall) -> ActionResult:
        return await self._start_execute(call)

    def _start_execute(self, call: ActionCall) -> asyncio.Future[ActionResult]:
        if self._fused and runs_inline(call.connector):
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

    # -- the approval gate ----------------------------------------------------------------

    async def _gate(self, step: int, proposed: ProposedAction) -> tuple[bool, str]:
        policy = self._manifest.policy
        sla = policy.sla
        since = workflow.now()
        self._verdict = None
        self._run.pending = PendingApproval(
            step=step,
            action=proposed.action,
            amount=proposed.amount,
            confidence=proposed.confidence,
            rationale=proposed.rationale,
            approvers=list(policy.approvers),
            since=since,
        )
        self._set_status(RunStatus.WAITING_APPROVAL)
        self._event(
            f"step-{step}",
            "policy",
            proposed.action,
            "approval requested",
            detail={"approvers": policy.approvers},
        )
        await self._record()
        for deadline, phase in (
            (sla.remind_after, "remind"),
            (sla.escalate_after, "escalate"),
            (sla.expire_after, "expire"),
        ):
            await self._wait_for_verdict(since + deadline - workflow.now())
            if self._verdict is not None:
                break
            await self._sla_phase(phase, step)
        assert self._verdict is not None  # the expire phase always sets one
        await self._acknowledge()
        verdict, approver, note = self._verdict
        self._run.pending = None
        self._set_status(RunStatus.RUNNING)
        self._event(f"step-{step}", approver, proposed.action, verdict, rationale=note)
        return verdict == "approve", approver

    async def _acknowledge(self) -> None:
        """End the workflow task before going on, so the operator's update gets its answer now.

        Local activities keep a workflow task open, and an update's result leaves with the
        task: without this, `aios approve` would wait for every inline step after the gate.
        """
        if self._fused:
            await workflow.sleep(ACKNOWLEDGE_PAUSE)

    async def _wait_for_verdict(self, remaining: timedelta) -> None:
        if remaining <= timedelta(0):
            return
        try:
            await workflow.wait_condition(lambda: self._verdict is not None, timeout=remaining)
        except TimeoutError:
            return

    async def _sla_phase(self, phase: str, step: int) -> None:
        pending = self._run.pending
        assert pending is not None
        policy = self._manifest.policy
        if phase == "remind":
            self._run.pending = pending.model_copy(update={"reminded": True})
            self._event(
                f"step-{step}",
                "policy",
                "remind",
                "approval still waiting",
                detail={"approvers": pending.approvers},
            )
        elif phase == "escalate":
            approvers = list(dict.fromkeys([*policy.approvers, *policy.escalation_approvers]))
            self._run.pending = pending.model_copy(update={"escalated": True, "approvers": approvers})
            self._event(f"step-{step}", "policy", "escalate", "escalated", detail={"approvers": approvers})
        else:
            self._verdict = (policy.sla.on_expiry, "policy:sla-expired", "the approval window expired")
        await self._record()

    def _decide(self, verdict: Verdict, decision: Decision) -> DecisionOutcome:
        """The one handler behind the approve/reject signals and the decide update."""
        pending = self._run.pending
        refusal = self._refusal(decision, pending)
        if refusal:
            self._refuse(f"{verdict} {decision.model_dump_json()}", refusal)
            return DecisionOutcome(accepted=False, reason=refusal, step=decision.step)
        assert pending is not None
        self._verdict = (verdict, decision.approver, decision.note)
        return DecisionOutcome(accepted=True, reason=f"{verdict}d step {pending.step}", step=pending.step)

    def _refusal(self, decision: Decision, pending: PendingApproval | None) -> str:
        if pending is None or self._verdict is not None:
            return "no approval is pending (a late or duplicate decision changes nothing)"
        if decision.step is not None and decision.step != pending.step:
            return f"step {decision.step} is not waiting for approval; step {pending.step} is"
        if not may_approve(self._manifest, decision.approver, escalated=pending.escalated):
            return f"{decision.approver!r} may not approve this; allowed: {', '.join(pending.approvers)}"
        return ""

    def _refuse(self, received: str, reason: str) -> None:
        self._run.refused.append(RefusedDecision(received=received[:RECEIVED_EXCERPT], reason=reason))
        self._event(
            "decision",
            "operator",
            "decision",
            "refused",
            rationale=reason,
            detail={"received": received[:RECEIVED_EXCERPT]},
        )

    # -- operator interface ----------------------------------------------------------------

    @workflow.signal(name="approve")
    async def approve_signal(self, payload: RawValue) -> None:
        await self._signalled_decision("approve", payload)

    @workflow.signal(name="reject")
    async def reject_signal(self, payload: RawValue) -> None:
        await self._signalled_decision("reject", payload)

    async def _signalled_decision(self, verdict: Verdict, payload: RawValue) -> None:
        decision = self._parse(Decision, payload, verdict)
        if decision is not None:
            self._decide(verdict, decision)
        await self._record()

    @workflow.update(name="decide")
    async def decide_update(self, payload: RawValue) -> DecisionOutcome:
        request = self._decision_request(payload)
        outcome = self._decide(request.verdict, request.decision)
        await self._record()
        return outcome

    @decide_update.validator
    def _validate_decide(self, payload: RawValue) -> None:
        # Rejected here, nothing enters history: only requests that could matter get through.
        # Taken raw, so a wrongly typed request is refused naming its field, not as undecodable.
        request = self._decision_request(payload)
        pending = self._run.pending
        if pending is None or self._verdict is not None:
            raise ValueError("no approval is pending for this run (a late or duplicate decision)")
        if request.decision.step is not None and request.decision.step != pending.step:
            raise ValueError(
                f"step {request.decision.step} is not waiting for approval; step {pending.step} is"
            )

    def _decision_request(self, payload: RawValue) -> DecisionRequest:
        try:
            value: Any = workflow.payload_converter().from_payload(payload.payload)
            return DecisionRequest.model_validate(value)
        except (ValidationError, ValueError, TypeError) as error:
            problem = _first_line(error)
            raise ValueError(f"malformed decide request: {problem}; expected {DECIDE_SHAPE}") from None

    @workflow.signal(name="pause")
    async def pause_signal(self, payload: RawValue) -> None:
        request = self._parse(PauseRequest, payload, "pause")
        if request is not None and not self._paused:
            self._paused = True
            self._event("control", request.by, "pause", "requested", rationale=request.reason)
            await self._record()

    @workflow.signal(name="resume")
    async def resume_signal(self, payload: RawValue) -> None:
        request = self._parse(ResumeRequest, payload, "resume")
        if request is None:
            return
        self._paused = False
        self._extra_tokens += request.extra_tokens
        self._extra_cost += request.extra_cost
        self._resumes += 1
        self._event(
            "control",
            request.by,
            "resume",
            "requested",
            detail={"extra_tokens": request.extra_tokens, "extra_cost": request.extra_cost},
        )
        await self._record()

    @workflow.query(name="state")
    def state_query(self) -> RunState:
        return self._run.snapshot()

    def _parse(self, model: type[ModelT], payload: RawValue, what: str) -> ModelT | None:
        """Decode an operator's JSON; a malformed one is refused, recorded, and harms nothing."""
        try:
            value: Any = workflow.payload_converter().from_payload(payload.payload)
            return model.model_validate(value if value is not None else {})
        except (ValidationError, ValueError, TypeError) as error:
            received = payload.payload.data.decode(errors="replace")
            self._refuse(f"{what} {received}", f"malformed {what}: {_first_line(error)}")
            return None

    # -- bookkeeping ----------------------------------------------------------------------

    async def _hold_while_paused(self) -> None:
        if not self._paused:
            return
        await self._perform_deferred()  # approved before the pause: done, not left hanging
        previous = self._run.status
        self._set_status(RunStatus.PAUSED)
        await self._record()
        await workflow.wait_condition(lambda: not self._paused)
        await self._acknowledge()
        self._set_status(previous)

    def _set_status(self, status: RunStatus) -> None:
        if status is self._run.status:
            return
        self._run.status = status
        workflow.upsert_search_attributes([STATE_KEY.value_set(status.value)])
        workflow.set_current_details(self._details())

    def _details(self) -> str:
        run = self._run
        lines = [
            f"**{run.request.agent}** ({run.request.mode}, manifest {run.request.manifest.version})",
            f"status: {run.status.value}, turn {run.turn}, {len(run.steps)} steps",
        ]
        if run.pending is not None:
            lines.append(
                f"waiting for approval of step {run.pending.step} ({run.pending.action}) "
                f"by {', '.join(run.pending.approvers)}"
            )
        return "\n\n".join(lines)

    def _note_risk(self, spec: ActionSpec | None) -> None:
        if spec is None:
            return
        if self._run.highest_risk is None or spec.risk.rank > self._run.highest_risk.rank:
            self._run.highest_risk = spec.risk
            workflow.upsert_search_attributes([RISK_KEY.value_set(spec.risk.value)])

    def _add_step(
        self,
        step: int,
        action: str,
        grade: Grade,
        status: StepStatus,
        *,
        decided_by: str = "policy",
        effect_key: str | None = None,
        detail: dict[str, Any] | None = None,
    ) -> None:
        record = StepRecord(
            step=step,
            action=action,
            grade=grade,
            status=status,
            decided_by=decided_by,
            effect_key=effect_key,
            detail=detail or {},
        )
        self._run.steps.append(record)
        self._event(f"step-{step}", decided_by, action, status, detail=detail or {})

    def _finish(self, status: RunStatus, outcome: str) -> None:
        self._run.outcome = outcome
        self._set_status(status)
        self._event("run", "policy", "finish", status.value, rationale=outcome)

    def _event(
        self,
        step: str,
        actor: str,
        action: str,
        outcome: str,
        *,
        rationale: str = "",
        detail: dict[str, Any] | None = None,
    ) -> None:
        self._event_count += 1
        self._events.append(
            AuditEventRef(
                key=f"{self._run.run_id}/e{self._event_count}",
                step=step,
                actor=actor,
                action=action,
                outcome=outcome,
                rationale=rationale,
                detail=detail or {},
            )
        )

    async def _record(self) -> None:
        await self._start_record()

    async def _step_recorded(self) -> None:
        """A finished step's record: now, or (fused) with the next turn's reservation."""
        if not self._fused:
            await self._record()

    def _start_record(self, release: SlotRequest | None = None) -> asyncio.Future[None]:
        return workflow.start_local_activity_method(
            AgentActivities.record, self._record_request(release), start_to_close_timeout=BOOKKEEPING_TIMEOUT
        )

    def _record_request(self, release: SlotRequest | None = None) -> RecordRequest:
        """Everything not yet written: the events since the last record, the state, the usage."""
        events, self._events = self._events, []
        settle, self._unsettled = self._unsettled, None
        return RecordRequest(
            state=self._run.snapshot(),
            task=self._run.request.task,
            paired_with=self._run.request.paired_with,
            events=events,
            settle=settle,
            release=release,
        )

    async def _wrap_up(self, slot: SlotRequest) -> None:
        if not self._fused:
            await self._despite_cancellation(
                workflow.start_activity_method(
                    AgentActivities.release_slot, slot, start_to_close_timeout=BOOKKEEPING_TIMEOUT
                )
            )
        await self._despite_cancellation(
            asyncio.ensure_future(workflow.wait_condition(workflow.all_handlers_finished))
        )
        # Fused: the last record frees the slot in its own transaction.
        await self._despite_cancellation(self._start_record(release=slot if self._fused else None))


def _cause(failure: ActivityError | ApplicationError) -> str:
    if isinstance(failure, ApplicationError):
        return str(failure)
    cause = failure.cause
    return str(cause) if cause is not None else str(failure)


def _reconciled(result: ReconcileResult | None) -> dict[str, Any]:
    if result is None or result.outcome == "not_unknown":
        return {}
    return {
        "reconciled": result.outcome,
        "resolved_by": result.resolved_by,
        "needs_operator": result.needs_operator,
    }


def _first_line(error: Exception) -> str:
    if isinstance(error, ValidationError):
        # "decision.approver: Input should be a valid string", one per wrong field.
        return "; ".join(
            f"{'.'.join(str(part) for part in problem['loc']) or 'payload'}: {problem['msg']}"
            for problem in error.errors()
        )[:300]
    return str(error).strip().splitlines()[0][:200] if str(error).strip() else type(error).__name__
