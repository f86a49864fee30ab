"""The agent run: plan with a model, grade each action, gate, act, compensate, record.

Everything here is deterministic: time, ids and waiting go through the `workflow` API,
every effect goes through an activity, and the policy is a pure function. The workflow is
built in layers, each a module of its own:

- `RunBookkeeping` (bookkeeping.py): audit events, step records, status, record calls;
- `ApprovalGate` (approval_gate.py): waiting for a person, the SLA, judging decisions;
- `OperatorInterface` (operator_interface.py): the signals, the `decide` update, the query;
- `Delegating` (delegation.py): a `connector: agent` action as a child run, and its undo;
- `AgentRunWorkflow` (here): the turn loop, thinking, acting, compensating, continuing.

Stateless helpers are functions: run_setup.py (slot, recall), effects.py (executing,
reconciling and undoing an action). run_progress.py holds the run's one state: the workflow
builds it and hands it to every layer, and continue-as-new carries it field by declared field.
"""

from __future__ import annotations

import asyncio
from datetime import datetime, timedelta
from functools import partial
from typing import Any, TypeVar

from temporalio import workflow
from temporalio.exceptions import ActivityError, ApplicationError

from workflows.bookkeeping import BOOKKEEPING_TIMEOUT
from workflows.delegation import Delegating
from workflows.effects import (
    action_call,
    compensation_call,
    failure_cause,
    in_doubt,
    read_ledger,
    reconcile_effect,
    reconciled_detail,
    settled_by_operator,
    start_execute,
)
from workflows.notifications import notify, run_notice
from workflows.outcome_memory import start_remembering
from workflows.run_progress import ApprovedAct, RunProgress
from workflows.run_setup import acquire_slot, recall
from workflows.versions import (
    ACT_IN_THINK_PATCH,
    BUDGET_DAY_TURNS_PATCH,
    CONTINUE_AS_NEW_PATCH,
    FUSED_BOOKKEEPING_PATCH,
    THINK_CHAINS_PATCH,
)

with workflow.unsafe.imports_passed_through():
    from activities.agent import AgentActivities
    from activities.reconcile import ReconcileResult
    from aios.errors import ActionFailed, ActMissing, RunAborted, application_error
    from aios.governance.policy import grade_action, rides_in_next_think, turns_ahead
    from aios.models.manifest import AGENT_CONNECTOR, ActionSpec, Grade
    from aios.models.notify import Notice
    from aios.models.run import (
        TOLD_STEPS,
        ActionCall,
        ActionResult,
        BudgetGrant,
        BudgetRequest,
        DoneStep,
        EffectInDoubt,
        PlanRequest,
        PlanResponse,
        Proposal,
        ProposedAction,
        RunInput,
        RunState,
        RunStatus,
        Settlement,
        SlotRequest,
        StepRecord,
        StepStatus,
        ThinkRequest,
        ThinkResult,
        next_budget_day,
        reservation_key,
    )


# A real model on a CPU can take minutes, with the connector's own retries on top.
THINK_TIMEOUT = timedelta(minutes=5)
# A continuing run ends its workflow task every this many turns (versions.py, continue-as-new):
# inline steps otherwise keep one task open, which delays queries and holds every step's
# marker for a single large commit.
CHECKPOINT_TURNS = 50

T = TypeVar("T")


@workflow.defn(name="AgentRun")
class AgentRunWorkflow(Delegating):
    @workflow.init
    def __init__(self, request: RunInput) -> None:
        # The run's one state, fresh or from the previous history's carry, for every layer.
        super().__init__(request, RunProgress.resumed(request, workflow.info().workflow_id))
        self._cancelled = False
        self._may_continue = False
        self._act_in_think = False
        self._chains = False
        self._chained: list[ThinkResult] = []  # turns the think activity took ahead, in order
        # An approved inline act waits for the next `think`, which performs it first: one local
        # activity per step instead of two. Anything that waits performs it on its own first.
        self._deferred: ApprovedAct | None = None

    # -- the run --------------------------------------------------------------------------

    @workflow.run
    async def run(self, request: RunInput) -> RunState:
        self._run.fused = workflow.patched(FUSED_BOOKKEEPING_PATCH)
        self._may_continue = workflow.patched(CONTINUE_AS_NEW_PATCH)
        self._act_in_think = workflow.patched(ACT_IN_THINK_PATCH)
        self._chains = workflow.patched(THINK_CHAINS_PATCH)
        slot = SlotRequest(
            agent=request.agent, run_id=self._run.run_id, limit=self._manifest.budget.max_concurrent_runs
        )
        try:
            if request.continued is None:
                self._event("run", _started_by(request), "start", "started", detail=_start_detail(request))
                await acquire_slot(slot, fused=self._run.fused)
                self._set_status(RunStatus.RUNNING)
                self._run.recalled = await recall(self._run.request, fused=self._run.fused)
            else:
                # The slot is still held, the memories recalled and the saga restored: the
                # carry had them.
                workflow.set_current_details(self._details())
            await self._turns()
            self._finish(RunStatus.COMPLETED, self._run.outcome or "done")
        except RunAborted as abort:
            await self._compensate(str(abort))
        except ActivityError as failure:
            await self._compensate(f"a step failed: {failure_cause(failure)}")
        except ApplicationError as failure:
            # A local activity's final failure arrives as its ApplicationError, unwrapped.
            # Runs from before fused bookkeeping failed here; they must replay the same way.
            if not self._run.fused:
                raise
            await self._compensate(f"a step failed: {failure_cause(failure)}")
        except asyncio.CancelledError:
            self._cancelled = True
            await self._compensate("cancelled by the operator")
        await self._wrap_up(slot)
        if self._cancelled:
            # Ends as Cancelled in Temporal, after compensating and recording everything.
            raise asyncio.CancelledError("cancelled by the operator")
        return self._final_state()

    async def _turns(self) -> None:
        for turn in range(self._run.turn + 1, self._manifest.turn_limit + 1):
            await self._checkpoint(turn)
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

    async def _checkpoint(self, turn: int) -> None:
        """Between turns: end the workflow task now and then; continue as new when long."""
        if not self._may_continue:
            return
        if turn % CHECKPOINT_TURNS == 0:
            await self._end_workflow_task()
        info = workflow.info()
        long = info.get_current_history_length() >= self._run.request.max_history_events
        if long or info.is_continue_as_new_suggested():
            await self._continue_as_new()

    async def _continue_as_new(self) -> None:
        await self._perform_deferred()
        await self._record()  # what happened so far is written before the history is closed
        await workflow.wait_condition(workflow.all_handlers_finished)
        request = self._run.request
        previous = request.continued.continuations if request.continued else 0
        carry = self._run.carry(continuations=previous + 1)
        workflow.continue_as_new(request.model_copy(update={"continued": carry, "start_paused": False}))

    async def _hold_while_paused(self) -> None:
        if not self._run.paused:
            return
        await self._perform_deferred()  # approved before the pause: done, not left hanging
        previous = self._run.status
        self._set_status(RunStatus.PAUSED)
        await self._record()
        await workflow.wait_condition(lambda: not self._run.paused)
        await self._acknowledge()
        self._set_status(previous)

    # -- thinking -------------------------------------------------------------------------

    async def _think(self, turn: int, memories: list[str]) -> PlanResponse:
        while True:
            budget = self._budget_request(turn)
            deferred, self._deferred = self._deferred, None
            result = self._from_chain(deferred)
            if result is None:
                request = ThinkRequest(
                    plan=self._plan_request(turn, memories, deferred),
                    budget=budget,
                    record=self._record_request() if self._run.fused else None,
                    settle_later=self._run.fused,
                    act=deferred.call if deferred else None,
                    chain=self._chain_length(turn),
                    next_step=self._run.step + 1,
                )
                result = await self._start_think(request, deferred)
                self._chained = list(result.chained)
            if deferred is not None:
                await self._acted(deferred, result.acted)
            plan = result.plan
            if plan is not None:
                self._run.tokens += plan.tokens_used
                self._run.cost += plan.cost
                self._run.cache_saved = self._run.cache_saved.plus(plan)
                if self._run.fused:
                    self._run.unsettled = Settlement.of(budget.reservation_key, plan)
                if plan.fallback:  # which model decided is part of the record (activities/model_choice.py)
                    detail = {"provider": plan.provider, "model": plan.model}
                    self._event(
                        f"turn-{turn}", "agent", "model", "fallback", rationale=plan.fallback, detail=detail
                    )
                return plan
            await self._pause_for_budget(result.grant)

    def _from_chain(self, deferred: ApprovedAct | None) -> ThinkResult | None:
        """The turn the think activity already took on its own, if it performed exactly the
        act this run deferred (same effect key); otherwise the rest of its chain is dropped."""
        if self._chained and deferred is not None and self._chained[0].act_key == deferred.call.effect_key:
            return self._chained.pop(0)
        self._chained.clear()
        return None

    def _chain_length(self, turn: int) -> int:
        """How many further turns the think activity may take on its own (aios.governance.policy's rule)."""
        if not self._chains:
            return 0
        return turns_ahead(
            turn,
            turn_limit=self._manifest.turn_limit,
            checkpoint_every=CHECKPOINT_TURNS,
            live=self._run.request.mode == "live",
            paused=self._run.paused,
        )

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

    async def _acted(self, act: ApprovedAct, result: ActionResult | None) -> None:
        if result is None:
            raise application_error(ActMissing, "think returned no outcome for its act", non_retryable=False)
        reconciled: ReconcileResult | None = None
        if result.status == "failed":
            # The act's own failure type when it has one (EffectConflict, ClientError...).
            failure = ApplicationError(
                result.error, type=result.error_type or ActionFailed.__name__, non_retryable=True
            )
            if not act.call.inline:  # a connector without I/O: no effect can be in doubt
                self._step_failed(act, result.error, None)
                raise failure
            result, reconciled = await self._recovered(act, failure)
        await self._step_done(act, result, reconciled)

    async def _pause_for_budget(self, grant: BudgetGrant) -> None:
        # Counted before recording: a resume sent the moment the pause is visible must count.
        resumes = self._run.resumes
        until = self._budget_day_turns(grant)
        self._event(
            f"turn-{self._run.turn}",
            "policy",
            "budget",
            "paused",
            rationale=grant.reason,
            detail={"until": until.isoformat()} if until else {},
        )
        self._run.paused_until = until
        self._set_status(RunStatus.PAUSED_BUDGET)
        await self._record()
        # Told while the pause's timer starts, in the same workflow task: the wait is what the
        # pause is, the notice goes beside it.
        notice = asyncio.ensure_future(notify(self._budget_notice(grant, until, resumes)))
        if until is None:
            await workflow.wait_condition(lambda: self._run.resumes > resumes)
        else:
            await self._wait_for_budget_day(until, resumes)
        await notice
        self._run.paused_until = None
        await self._acknowledge()
        self._set_status(RunStatus.RUNNING)

    def _budget_notice(self, grant: BudgetGrant, until: datetime | None, resumes: int) -> Notice:
        return run_notice(
            "budget_pause",
            run_id=self._run.run_id,
            manifest=self._manifest,
            ref=f"turn-{self._run.turn}/resume-{resumes}",
            summary=f"{self._manifest.name} paused on its budget: {grant.reason}",
            context={
                "run_tokens": grant.run_tokens,
                "run_cost": grant.run_cost,
                "day_tokens": grant.day_tokens,
                "day_cost": grant.day_cost,
                "until": until.isoformat() if until else None,
                "settle": f"aios resume {self._run.run_id} --extra-cost 1.0",
            },
        )

    def _budget_day_turns(self, grant: BudgetGrant) -> datetime | None:
        """When a daily cap's pause ends by itself (the next budget day), or None: a per-run
        cap waits for the operator. Runs from before this waited for the operator either way."""
        if grant.cap != "day" or not workflow.patched(BUDGET_DAY_TURNS_PATCH):
            return None
        return next_budget_day(workflow.now())

    async def _wait_for_budget_day(self, until: datetime, resumes: int) -> None:
        """A durable timer to the next budget day; the operator may resume sooner."""
        try:
            await workflow.wait_condition(lambda: self._run.resumes > resumes, timeout=until - workflow.now())
        except TimeoutError:
            self._event(
                f"turn-{self._run.turn}",
                "policy",
                "budget",
                "resumed",
                rationale=f"the budget day turned at {until.isoformat()}",
            )

    def _plan_request(self, turn: int, memories: list[str], act: ApprovedAct | None) -> PlanRequest:
        done = [step.action for step in self._run.steps]
        told = [self._told(step) for step in self._run.steps[-TOLD_STEPS:]]
        if act is not None:  # performed before the model is asked; a failure ends the run anyway
            call = act.call
            told.append(
                DoneStep(
                    step=call.step,
                    action=call.action,
                    status="executed",
                    params=call.params,
                    effect_key=call.effect_key,
                )
            )
        return PlanRequest(
            run_id=self._run.run_id,
            turn=turn,
            manifest=self._manifest,
            task=self._run.request.task,
            done_actions=[*done, act.call.action] if act else done,
            done=told[-TOLD_STEPS:],
            context=memories,
            events=list(self._run.received),
        )

    def _told(self, step: StepRecord) -> DoneStep:
        """What the model is told of a step: its params, status, and where its result is."""
        proposal = next((p for p in reversed(self._run.proposals) if p.step == step.step), None)
        return DoneStep(
            step=step.step,
            action=step.action,
            status=step.status,
            params=proposal.proposed.params if proposal else {},
            effect_key=step.effect_key,
            error=str(step.detail.get("error", "")),
        )

    def _budget_request(self, turn: int) -> BudgetRequest:
        budget, model = self._manifest.budget, self._manifest.model
        delegation = self._run.request.delegation
        estimate = model.tokens_per_turn_estimate
        return BudgetRequest(
            agent=self._run.request.agent,
            run_id=self._run.run_id,
            reservation_key=reservation_key(self._run.run_id, turn),
            tokens=estimate,
            cost=estimate / 1000 * model.cost_per_1k_tokens,
            tokens_per_run=budget.tokens_per_run + self._run.extra_tokens,
            cost_per_run=budget.cost_per_run + self._run.extra_cost,
            tokens_per_day=budget.tokens_per_day,
            cost_per_day=budget.cost_per_day,
            override_day=self._run.override_day,
            delegated_tokens=self._run.delegated_tokens,
            delegated_cost=round(self._run.delegated_cost, 6),
            ceiling_tokens=delegation.ceiling_tokens if delegation else None,
            ceiling_cost=delegation.ceiling_cost if delegation else None,
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
            approved, decided_by = await self._gate(step, proposed, verdict.reason)
            if not approved:
                self._add_step(step, proposed.action, verdict.grade, "rejected", decided_by=decided_by)
                raise RunAborted(f"step {step} ({proposed.action}) was rejected by {decided_by}")
            await self._hold_while_paused()  # a pause sent while waiting holds the approved action
        await self._act(proposal, spec, decided_by, may_defer=may_defer)

    async def _act(self, proposal: Proposal, spec: ActionSpec, decided_by: str, *, may_defer: bool) -> None:
        call = action_call(self._run.run_id, proposal, spec)
        act = ApprovedAct(proposal, spec, decided_by, call)
        if may_defer and self._act_in_think and self._run.fused and rides_in_next_think(spec):
            self._deferred = act
            return
        await self._perform(act)

    async def _perform_deferred(self) -> None:
        """Perform a deferred act now, as its own local activity, before anything waits."""
        deferred, self._deferred = self._deferred, None
        if deferred is not None:
            await self._perform(deferred)

    async def _perform(self, act: ApprovedAct) -> None:
        if self._delegates(act.spec):
            await self._perform_delegation(act)
            return
        reconciled: ReconcileResult | None = None
        try:
            result = await start_execute(act.call, fused=self._run.fused)
        except (ActivityError, ApplicationError) as failure:  # regular or local activity
            result, reconciled = await self._recovered(act, failure)
        await self._step_done(act, result, reconciled)
        await self._step_recorded()

    async def _recovered(
        self, act: ApprovedAct, failure: ActivityError | ApplicationError
    ) -> tuple[ActionResult, ReconcileResult]:
        """A failed act stands as done only if the service says its effect happened (asked
        when the ledger calls it unknown); otherwise the step fails and the failure goes on."""
        reconciled = await self._reconcile(act.call, failure)
        if reconciled is not None and in_doubt(reconciled):
            reconciled = await self._wait_for_operator(act.call, reconciled)
        if reconciled is None or reconciled.outcome != "succeeded":
            self._step_failed(act, failure_cause(failure), reconciled)
            raise failure
        return ActionResult(status="succeeded", response=reconciled.response), reconciled

    async def _perform_delegation(self, act: ApprovedAct) -> None:
        try:
            result = await self._delegate(act)
        except (ApplicationError, asyncio.CancelledError) as failure:
            self._step_failed(act, str(failure), None)
            raise
        await self._step_done(act, result, None, child=result.response)
        await self._step_recorded()
        self._cancelled_meanwhile()

    def _step_failed(self, act: ApprovedAct, error: str, reconciled: ReconcileResult | None) -> None:
        self._add_step(
            act.proposal.step,
            act.call.action,
            act.proposal.grade,
            "failed",
            decided_by=act.decided_by,
            effect_key=act.call.effect_key,
            detail={"error": error, **reconciled_detail(reconciled)},
        )

    async def _step_done(
        self,
        act: ApprovedAct,
        result: ActionResult,
        reconciled: ReconcileResult | None,
        *,
        child: dict[str, Any] | None = None,
    ) -> None:
        step, proposed, grade, call = act.proposal.step, act.proposal.proposed, act.proposal.grade, act.call
        if act.spec.compensation is not None:
            undo = compensation_call(self._manifest, call, act.spec.compensation, result.response)
            self._run.saga.add(undo)
        self._add_step(
            step,
            proposed.action,
            grade,
            "executed",
            decided_by=act.decided_by,
            effect_key=call.effect_key,
            detail={"replayed": result.replayed, **reconciled_detail(reconciled), **_child_detail(child)},
        )
        if grade is Grade.AUTO_AND_NOTIFY:
            self._event(
                f"step-{step}",
                "policy",
                "notify",
                "operator notified",
                rationale=f"{proposed.action} ran without approval; the policy asks to tell you",
            )
            await notify(
                run_notice(
                    "auto_and_notify",
                    run_id=self._run.run_id,
                    manifest=self._manifest,
                    ref=f"step-{step}",
                    summary=f"{self._manifest.name} ran {proposed.action} without approval; "
                    "the policy asks to tell you",
                    step=step,
                    action=proposed.action,
                    amount=proposed.amount,
                    context={"params": proposed.params, "rationale": proposed.rationale},
                )
            )

    async def _wait_for_operator(self, call: ActionCall, unresolved: ReconcileResult) -> ReconcileResult:
        """Reconciliation gave up and the effect may have happened: the run neither goes on
        nor compensates until a person settles it in the ledger (`aios effects resolve`).
        Each `effect_resolved` signal is a nudge to read the ledger again."""
        previous = self._run.status
        self._run.awaiting_operator = EffectInDoubt(
            effect_key=call.effect_key,
            step=call.step,
            action=call.action,
            since=workflow.now(),
            reason=unresolved.detail,
        )
        self._set_status(RunStatus.NEEDS_OPERATOR)
        self._event(
            f"step-{call.step}",
            "reconciler",
            call.action,
            "needs_operator",
            rationale=f"the outcome of {call.effect_key} is unknown: {unresolved.detail}",
            detail={"effect_key": call.effect_key, "resolve_with": "aios effects resolve"},
        )
        await self._record()
        await notify(
            run_notice(
                "needs_operator",
                run_id=self._run.run_id,
                manifest=self._manifest,
                ref=f"step-{call.step}",
                summary=f"the outcome of {call.effect_key} is unknown: {unresolved.detail}",
                step=call.step,
                action=call.action,
                amount=call.amount,
                context={
                    "settle": f"aios effects resolve {call.effect_key} --applied|--not-applied --as NAME"
                },
            )
        )
        try:
            while True:
                nudges = self._run.effect_nudges  # taken before reading: a nudge during the read counts
                reading = await read_ledger(call.effect_key)
                if reading.ledger_state in ("succeeded", "failed"):
                    break
                await workflow.wait_condition(partial(self._nudged_since, nudges))
        finally:
            self._run.awaiting_operator = None
        self._set_status(previous)
        return settled_by_operator(call.effect_key, reading)

    def _nudged_since(self, nudges: int) -> bool:
        return self._run.effect_nudges > nudges

    async def _reconcile(
        self, call: ActionCall, failure: ActivityError | ApplicationError
    ) -> ReconcileResult | None:
        result = await reconcile_effect(call, failure, within=self._run.request.reconcile_within)
        if result is not None and result.outcome != "not_unknown":
            self._event(
                f"step-{call.step}",
                "reconciler",
                call.action,
                f"reconciled:{result.outcome}",
                rationale=result.detail,
                detail=reconciled_detail(result),
            )
        return result

    # -- the end: compensation and wrap-up ------------------------------------------------

    async def _compensate(self, reason: str) -> None:
        self._set_status(RunStatus.COMPENSATING)
        self._event("saga", "policy", "compensate", "started", rationale=reason)
        outcomes = await self._run.saga.compensate(self._run_compensation)
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
        if call.connector == AGENT_CONNECTOR:  # a child run nobody waited for (delegation.py)
            await self._despite_cancellation(asyncio.ensure_future(self._undo_child(call)))
            return
        await self._despite_cancellation(start_execute(call, fused=self._run.fused))

    async def _despite_cancellation(self, work: asyncio.Future[T]) -> T:
        """Undo and bookkeeping are never abandoned halfway: a cancel waits for them to finish."""
        try:
            return await asyncio.shield(work)
        except asyncio.CancelledError:
            self._cancelled = True
            return await work

    async def _wrap_up(self, slot: SlotRequest) -> None:
        if not self._run.fused:
            await self._despite_cancellation(
                workflow.start_activity_method(
                    AgentActivities.release_slot, slot, start_to_close_timeout=BOOKKEEPING_TIMEOUT
                )
            )
        await self._despite_cancellation(
            asyncio.ensure_future(workflow.wait_condition(workflow.all_handlers_finished))
        )
        remembering = start_remembering(self._run.snapshot(), self._manifest, self._run.request)
        # Fused: the last record frees the slot in its own transaction.
        await self._despite_cancellation(self._start_record(release=slot if self._run.fused else None))
        if remembering is not None:
            await self._despite_cancellation(remembering)


def _child_detail(child: dict[str, Any] | None) -> dict[str, Any]:
    """A delegating step's record shows its child run's summary (workflows/delegation.py)."""
    return {"child": child} if child else {}


def _started_by(request: RunInput) -> str:
    """The start's actor: the person who asked, or the trigger (`schedule:nightly`)."""
    cause = request.cause
    return cause.label if cause is not None and cause.triggered else request.requested_by


def _start_detail(request: RunInput) -> dict[str, str]:
    if request.cause is None:
        return {"mode": request.mode}
    return {"mode": request.mode, "cause": request.cause.label}
