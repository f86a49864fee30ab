"""The agent run's bookkeeping activities: slots, recall, thinking (budget + model), records."""

from __future__ import annotations

import json
import time
from typing import Any

from psycopg import AsyncConnection
from temporalio import activity
from temporalio.exceptions import ApplicationError

from activities.actions import EXECUTE_ATTEMPTS, ActionActivities
from activities.audit import run_entries
from activities.deps import ActivityDeps
from activities.memory import describe_run
from activities.model_cache import Answer, ModelCache
from activities.model_choice import Chosen, first_answer
from activities.tool_results import ledger_results, tool_messages
from aios.errors import NoSlotYet, application_error
from aios.governance.audit import append
from aios.governance.policy import chained_act
from aios.governance.slots import free_ended_slots
from aios.governance.subjects import SubjectVault, run_subject
from aios.ledger import budget, runs
from aios.ledger.effects import EffectRecord
from aios.models.manifest import AgentManifest
from aios.models.run import (
    TOLD_STEPS,
    ActionCall,
    ActionResult,
    DoneStep,
    PlanRequest,
    PlanResponse,
    ProposedAction,
    RecallRequest,
    RecallResult,
    RecordRequest,
    Settlement,
    SlotRequest,
    ThinkRequest,
    ThinkResult,
    number_in,
    reservation_key,
)
from aios.observability.telemetry import current_trace_id
from connectors.model import (
    ChatMessage,
    ChatRequest,
    ModelProvider,
    OfflineModel,
    ToolSpec,
)

# A chain of turns in one activity ends after this long: a slow (real) model gets its own
# local activity per turn, and a retried attempt never redoes more than this.
CHAIN_SECONDS = 2.0

# Extra arguments every tool carries, so the policy can weigh the model's own judgement.
JUDGEMENT_PROPERTIES: dict[str, Any] = {
    "confidence": {"type": "number", "minimum": 0, "maximum": 1},
    "rationale": {"type": "string"},
}


class AgentActivities:
    def __init__(
        self,
        deps: ActivityDeps,
        models: dict[str, ModelProvider] | None = None,
        actions: ActionActivities | None = None,
    ) -> None:
        self._pool = deps.pool
        self._subjects = deps.subjects
        self._cache = ModelCache(deps.pool)
        self._actions = actions or ActionActivities(deps, deps.connectors)
        self._models: dict[str, ModelProvider] = models or deps.models or {"offline": OfflineModel()}

    @activity.defn(name="agent.acquire_slot")
    async def acquire_slot(self, request: SlotRequest) -> None:
        """Take a slot; at the limit, first free the slots of holders that have ended
        (terminated, timed out: they never released theirs), then try once more."""
        async with self._pool.connection() as conn:
            taken = await runs.acquire_slot(
                conn, agent=request.agent, run_id=request.run_id, limit=request.limit
            )
            if not taken and await free_ended_slots(conn, activity.client(), agent=request.agent):
                taken = await runs.acquire_slot(
                    conn, agent=request.agent, run_id=request.run_id, limit=request.limit
                )
        if not taken:
            raise application_error(
                NoSlotYet,
                f"all {request.limit} slots of {request.agent!r} are busy; the run waits its turn",
                non_retryable=False,
            )

    @activity.defn(name="agent.release_slot")
    async def release_slot(self, request: SlotRequest) -> None:
        async with self._pool.connection() as conn:
            await runs.release_slot(conn, agent=request.agent, run_id=request.run_id)

    @activity.defn(name="agent.recall")
    async def recall(self, request: RecallRequest) -> RecallResult:
        """What earlier runs did for the same subject, newest first, within the token budget."""
        subject = request.task.get("subject") or request.task.get("customer")
        if not subject or request.top_k == 0:
            return RecallResult()
        async with self._pool.connection() as conn:
            rows = await runs.subject_history(
                conn,
                agent=request.agent,
                subject=str(subject),
                exclude_run=activity.info().workflow_id or "",
                limit=request.top_k,
            )
        return _within_budget([describe_run(row) for row in rows], request.token_budget)

    @activity.defn(name="agent.think")
    async def think(self, request: ThinkRequest) -> ThinkResult:
        """One turn, then (up to `request.chain`) the turns whose plan is one action the
        policy approves outright on an inline connector: those need no workflow task each."""
        first = await self._turn(request, settle_first=None)
        chained: list[ThinkResult] = []
        current, result = request, first
        deadline = time.monotonic() + CHAIN_SECONDS
        while len(chained) < request.chain and time.monotonic() < deadline:
            follow = chained_turn(current, result)
            if follow is None or result.plan is None:
                break
            # The chain settles each turn as it goes; the workflow settles the last it sees.
            result = await self._turn(follow, settle_first=_settlement(current, result.plan))
            chained.append(result)
            current = follow
        return first.model_copy(update={"chained": chained}) if chained else first

    async def _turn(self, request: ThinkRequest, *, settle_first: Settlement | None) -> ThinkResult:
        acted = await self._act(request.act) if request.act is not None else None
        act_key = request.act.effect_key if request.act is not None else None
        record = request.record
        async with self._pool.connection() as conn, conn.transaction():
            # Settled first, so the caps see what the last turn really used.
            await _settle(conn, record.settle if record else settle_first)
            grant = await budget.reserve(conn, request.budget)
            if record is not None:
                await _bookkeep(conn, record, self._subjects)
        if not grant.granted:
            return ThinkResult(grant=grant, acted=acted, act_key=act_key)
        plan = await self._plan(request.plan)
        if not request.settle_later:
            async with self._pool.connection() as conn:
                await _settle(conn, _settlement(request, plan))
        return ThinkResult(grant=grant, plan=plan, acted=acted, act_key=act_key)

    async def _act(self, call: ActionCall) -> ActionResult:
        """The previous step's approved inline action, through the ledger as `action.execute`.

        A final failure comes back as data, for the workflow to reconcile, record and
        compensate; a retryable one fails this attempt, and the retry finds the ledger's row,
        until the attempts an `action.execute` activity would get are spent.
        """
        try:
            return await self._actions.execute(call)
        except ApplicationError as failure:
            if not failure.non_retryable and activity.info().attempt < EXECUTE_ATTEMPTS:
                raise
            return ActionResult(status="failed", error=str(failure), error_type=failure.type or "")

    async def _plan(self, request: PlanRequest) -> PlanResponse:
        manifest = request.manifest
        ledger: dict[str, EffectRecord] = {}
        if any(step.effect_key for step in request.done):  # a first turn touches no database
            async with self._pool.connection() as conn:
                ledger = await ledger_results(conn, request.done, self._subjects)
        results = tool_messages(request.done_actions, request.done, ledger, manifest.memory.previous_turns)

        async def ask(chat: ChatRequest) -> Chosen:
            return await first_answer(self._models, manifest.model, chat)

        answer = await self._cache.chat(ask, request, _chat_request(request, results))
        return _planned(manifest, answer)

    @activity.defn(name="agent.record")
    async def record(self, request: RecordRequest) -> None:
        """Settlement, state mirror, audit rows and slot release in one transaction: all or none."""
        async with self._pool.connection() as conn, conn.transaction():
            await _settle(conn, request.settle)
            await _bookkeep(conn, request, self._subjects)


async def _settle(conn: AsyncConnection[Any], settlement: Settlement | None) -> None:
    if settlement is not None:
        await budget.settle(conn, settlement)


def _settlement(request: ThinkRequest, plan: PlanResponse) -> Settlement:
    return Settlement.of(request.budget.reservation_key, plan)


async def _bookkeep(conn: AsyncConnection[Any], request: RecordRequest, subjects: SubjectVault) -> None:
    state = request.state
    await runs.mirror_run(conn, state, task=request.task, paired_with=request.paired_with)
    if request.release is not None:
        await runs.release_slot(conn, agent=request.release.agent, run_id=request.release.run_id)
    # Last: the audit chain's lock is global and held to commit, so it is held the shortest.
    # A retried record skips the rows it already chained.
    if request.events:
        key = await subjects.key_for(conn, state.agent, run_subject(request.task))
        await append(conn, run_entries(request.events, state, current_trace_id(), sealed_with=key))


def chained_turn(request: ThinkRequest, result: ThinkResult) -> ThinkRequest | None:
    """The next turn the think activity may take on its own, or None.

    Only when the plan's act is one the workflow defers into that very turn (the rule is
    aios.governance.policy's `chained_act`): the workflow, grading the same proposal, defers the very
    same act (same step, same effect key) and takes this turn's result instead of asking
    again (it checks the act's key).
    """
    if result.plan is None or (result.acted is not None and result.acted.status == "failed"):
        return None
    chained = chained_act(request.plan.manifest, result.plan)
    if chained is None:
        return None
    proposed, spec = chained
    run_id, turn = request.plan.run_id, request.plan.turn + 1
    act = ActionCall.for_step(run_id, request.next_step, proposed, spec)
    told = DoneStep(
        step=act.step, action=act.action, status="executed", params=act.params, effect_key=act.effect_key
    )
    plan = request.plan.model_copy(
        update={
            "turn": turn,
            "done_actions": [*request.plan.done_actions, proposed.action],
            "done": [*request.plan.done, told][-TOLD_STEPS:],
        }
    )
    return ThinkRequest(
        plan=plan,
        budget=request.budget.model_copy(update={"reservation_key": reservation_key(run_id, turn)}),
        settle_later=True,
        act=act,
        next_step=request.next_step + 1,
    )


def _chat_request(request: PlanRequest, results: list[ChatMessage]) -> ChatRequest:
    manifest = request.manifest
    system = manifest.instructions or f"You are the {manifest.name} agent."
    if request.context:
        system += "\n\nWhat you remember:\n" + "\n".join(f"- {memory}" for memory in request.context)
    messages = [
        ChatMessage(role="system", content=system),
        ChatMessage(role="user", content=json.dumps(request.task, sort_keys=True)),
    ]
    # Events for the run's subject that arrived while it ran: what the person added meanwhile.
    messages += [
        ChatMessage(
            role="user", content=json.dumps({"event": event.topic, "data": event.data}, sort_keys=True)
        )
        for event in request.events
    ]
    messages += results  # what each step returned (tool_results.py)
    return ChatRequest(
        model=manifest.model.name,
        messages=messages,
        tools=_tools(manifest),
        temperature=manifest.model.temperature,
    )


def _planned(manifest: AgentManifest, answer: Answer) -> PlanResponse:
    """The plan in the model's answer, charged what it cost, or (from the cache) what it saved."""
    chosen = answer.chosen
    response = chosen.response
    tokens = response.total_tokens
    cost = tokens / 1000 * chosen.cost_per_1k_tokens
    nothing = (0, 0.0)
    spent, saved = (nothing, (tokens, cost)) if answer.cached else ((tokens, cost), nothing)
    planned_by = chosen.label if chosen.fallback else ""
    return PlanResponse(
        done=not response.tool_calls,
        proposals=[
            _proposal(call.name, call.arguments, manifest, planned_by) for call in response.tool_calls
        ],
        text=response.text,
        model=response.model,
        offline=response.offline,
        tokens_used=spent[0],
        cost=spent[1],
        cached=answer.cached,
        provider=chosen.provider,
        fallback=chosen.passed_over,
        saved_tokens=saved[0],
        saved_cost=saved[1],
    )


def _tools(manifest: AgentManifest) -> list[ToolSpec]:
    tools = []
    for name, spec in manifest.proposable_actions().items():
        properties: dict[str, Any] = {param: {} for param in spec.params}
        properties.update(JUDGEMENT_PROPERTIES)
        tools.append(
            ToolSpec(
                name=name,
                description=spec.description,
                parameters={"type": "object", "properties": properties, "required": ["confidence"]},
            )
        )
    return tools


def _proposal(
    name: str, arguments: dict[str, Any], manifest: AgentManifest, planned_by: str = ""
) -> ProposedAction:
    spec = manifest.actions.get(name)
    wanted = set(spec.params) if spec else set()
    params = {key: value for key, value in arguments.items() if key in wanted}
    return ProposedAction(
        action=name,
        params=params,
        amount=number_in(params.get("amount")),
        confidence=_clamp(arguments.get("confidence", 0.0)),
        rationale=str(arguments.get("rationale", "")),
        fallback_model=planned_by,
    )


def _clamp(value: Any) -> float:
    try:
        return min(1.0, max(0.0, float(value)))
    except (TypeError, ValueError):
        return 0.0  # an unreadable confidence counts as none: the policy then asks a human


def _within_budget(memories: list[str], token_budget: int) -> RecallResult:
    kept, tokens = [], 0
    for memory in memories:
        cost = max(1, len(memory) // 4)  # the usual characters-per-token estimate
        if tokens + cost > token_budget:
            break
        kept.append(memory)
        tokens += cost
    return RecallResult(memories=kept, tokens=tokens)
