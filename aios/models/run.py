"""An agent run's inputs, state, proposals, decisions and activity messages."""

from __future__ import annotations

import math
from datetime import UTC, date, datetime, time, timedelta
from enum import StrEnum
from typing import Any, Literal

from pydantic import Field

from aios.models.base import Payload
from aios.models.events import RunEvent
from aios.models.manifest import ActionSpec, AgentManifest, Grade

# Temporal refuses histories past 51,200 events and warns from 10,240: runs move to a fresh
# history well before either.
DEFAULT_MAX_HISTORY_EVENTS = 10_000


class RunStatus(StrEnum):
    QUEUED = "queued"  # waiting for a concurrency slot of its agent
    RUNNING = "running"
    WAITING_APPROVAL = "waiting_approval"
    PAUSED = "paused"  # kill switch
    PAUSED_BUDGET = "paused_budget"  # a budget cap was hit: the operator decides
    COMPENSATING = "compensating"
    COMPLETED = "completed"
    COMPENSATED = "compensated"
    # Two cases, told apart by `RunState.awaiting_operator`: a run still going that waits for
    # the operator to settle an effect in doubt (set), or a run that ended because an undo
    # itself failed (None; the run has ended). `RunState.ended` says which.
    NEEDS_OPERATOR = "needs_operator"

    @property
    def terminal(self) -> bool:
        """A status a run can end with; needs_operator also names a run still waiting."""
        return self in {RunStatus.COMPLETED, RunStatus.COMPENSATED, RunStatus.NEEDS_OPERATOR}


class CauseKind(StrEnum):
    PERSON = "person"  # `aios run`, the client, the Web UI
    SCHEDULE = "schedule"  # a Temporal Schedule of the agent's manifest
    EVENT = "event"  # an event the agent subscribes to
    RUN = "run"  # another run delegated to this one


class Cause(Payload):
    """What started a run: its lineage, kept in the audit trail and the `AiosCause` search attribute."""

    kind: CauseKind = CauseKind.PERSON
    ref: str = Field(
        default="operator",
        min_length=1,
        max_length=200,
        description="the person, the schedule's name, the event's id, or the parent run's id",
    )

    @property
    def label(self) -> str:
        """`event:evt-1`: what the Web UI filters on (`AiosCause = "event:evt-1"`)."""
        return f"{self.kind.value}:{self.ref}"

    @property
    def triggered(self) -> bool:
        """Started without a person waiting for the answer: a refusal is recorded, not raised."""
        return self.kind is not CauseKind.PERSON


class Delegation(Payload):
    """A run started by another run's `connector: agent` action: its place in the chain, and
    the budget its parent had left when it delegated (the child may spend no more)."""

    parent_run_id: str
    depth: int = Field(ge=1, description="1: a child of a run a person or trigger started")
    ceiling_tokens: int = Field(ge=0, description="tokens the parent run had left")
    ceiling_cost: float = Field(ge=0, description="cost the parent run had left")


class RunInput(Payload):
    agent: str
    manifest: AgentManifest
    task: dict[str, Any] = Field(default_factory=dict, description="what the operator asked")
    mode: Literal["live", "shadow"] = "live"
    start_paused: bool = False
    paired_with: str | None = Field(default=None, description="the run this one shadows")
    requested_by: str = "operator"
    cause: Cause | None = Field(default=None, description="what started the run (None: `requested_by`)")
    max_history_events: int = Field(
        default=DEFAULT_MAX_HISTORY_EVENTS,
        ge=50,
        description="the run continues as new (same id, fresh history) once its history is this long",
    )
    continued: RunCarry | None = Field(default=None, description="what the previous run of the chain left")
    reconcile_within: timedelta | None = Field(
        default=None,
        gt=timedelta(0),
        description="how long an effect's reconciler asks before the operator is needed "
        "(None: the reconciler's default, an hour)",
    )
    delegation: Delegation | None = Field(default=None, description="set when another run started this one")


def number_in(value: Any) -> float | None:
    """A finite number, or text holding one ("250.00", as models write amounts); else None."""
    if isinstance(value, bool):
        return None
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return number if math.isfinite(number) else None


class ProposedAction(Payload):
    """One action the model proposes, with its own confidence and rationale."""

    action: str
    params: dict[str, Any] = Field(default_factory=dict)
    amount: float | None = None
    confidence: float = Field(ge=0, le=1)
    rationale: str = ""
    fallback_model: str = Field(
        default="", description="the fallback model that planned it ('' for the manifest's own model)"
    )


class Proposal(Payload):
    """A proposed action after the policy graded it."""

    step: int
    turn: int
    proposed: ProposedAction
    grade: Grade
    grade_reason: str


StepStatus = Literal[
    "executed", "rejected", "forbidden", "shadowed", "failed", "compensated", "compensation_failed"
]


class StepRecord(Payload):
    step: int
    action: str
    grade: Grade
    status: StepStatus
    decided_by: str = "policy"
    effect_key: str | None = None
    detail: dict[str, Any] = Field(default_factory=dict)


DecisionChannel = Literal["cli", "link", "api", "web_ui_signal", "update"]


class Decision(Payload):
    """An operator's answer at an approval gate (the JSON typed into the Web UI's signal form)."""

    approver: str = Field(min_length=1, max_length=200)
    note: str = Field(default="", max_length=2000)
    step: int | None = Field(default=None, description="which pending step; default: the current one")
    channel: DecisionChannel | None = Field(
        default=None, description="how the decision came: cli, link, api (signals are web_ui_signal)"
    )
    token: str | None = Field(
        default=None,
        max_length=2000,
        description="a signed link's token (aios approvals serve): the run checks it, and only "
        "then counts the decision as verified",
    )


class LinkCheck(Payload):
    """Does this signed token bind this decision? (the `approvals.verify_link` activity)"""

    run_id: str
    step: int
    verdict: Literal["approve", "reject"]
    approver: str
    token: str


class LinkChecked(Payload):
    verified: bool
    reason: str = ""


class DecisionRequest(Payload):
    """The update's argument: a decision plus its verdict (signals carry the verdict in their name)."""

    verdict: Literal["approve", "reject"]
    decision: Decision


class DecisionOutcome(Payload):
    accepted: bool
    reason: str
    step: int | None = None
    verified: bool = Field(default=False, description="the decision came with a signed link the run checked")


class RefusedDecision(Payload):
    received: str = Field(description="what arrived, truncated, for the record")
    reason: str


class PendingApproval(Payload):
    step: int
    action: str
    amount: float | None
    confidence: float
    rationale: str
    approvers: list[str]
    since: datetime
    reminded: bool = False
    escalated: bool = False
    # What the inbox, the notification and the confirmation page show (None in runs from
    # before they were kept here: the inbox then reads the proposal and the manifest).
    params: dict[str, Any] | None = None
    grade_reason: str = ""
    remind_at: datetime | None = None
    escalate_at: datetime | None = None
    expire_at: datetime | None = None
    on_expiry: Literal["reject", "approve"] | None = None


class PauseRequest(Payload):
    """Holds a run before its next step (the kill switch for one run)."""

    by: str = Field(default="operator", min_length=1, max_length=200)
    reason: str = Field(default="", max_length=2000)


class ResumeRequest(Payload):
    """Resumes a paused run; for a budget pause, optionally grants more budget to this run."""

    by: str = Field(default="operator", min_length=1, max_length=200)
    extra_tokens: int = Field(default=0, ge=0)
    extra_cost: float = Field(default=0.0, ge=0)
    override_day: bool = Field(
        default=False,
        description="let this run's remaining turns go past the agent's daily caps (recorded)",
    )


class EffectResolution(Payload):
    """The `effect_resolved` signal: the operator settled an effect in doubt (see `aios effects
    resolve`). A nudge only: the run reads the outcome from the ledger, the truth."""

    effect_key: str = Field(min_length=1, max_length=1000)
    outcome: Literal["applied", "not_applied"]
    by: str = Field(min_length=1, max_length=200)
    note: str = Field(default="", max_length=2000)


class EffectInDoubt(Payload):
    """What a run waiting for the operator waits on: an effect reconciliation could not settle."""

    effect_key: str
    step: int
    action: str
    since: datetime
    reason: str = ""


class DayCapOverride(Payload):
    """An operator let this run go past its agent's daily caps, for its remaining turns."""

    by: str
    at: datetime


class CacheSavings(Payload):
    """Turns answered from the model-response cache, and what their calls would have spent."""

    hits: int = 0
    tokens: int = 0
    cost: float = 0.0

    def plus(self, plan: PlanResponse) -> CacheSavings:
        if not plan.cached:
            return self
        return CacheSavings(
            hits=self.hits + 1,
            tokens=self.tokens + plan.saved_tokens,
            cost=round(self.cost + plan.saved_cost, 6),
        )


class RunState(Payload):
    """What the `state` query returns, and what is mirrored to Postgres after each step."""

    run_id: str
    agent: str
    manifest_version: str
    mode: Literal["live", "shadow"]
    status: RunStatus
    turn: int = 0
    pending_approval: PendingApproval | None = None
    proposals: list[Proposal] = Field(default_factory=list)
    steps: list[StepRecord] = Field(default_factory=list)
    refused_decisions: list[RefusedDecision] = Field(default_factory=list)
    recalled: list[str] = Field(default_factory=list, description="memories the run started with")
    tokens_spent: int = 0
    cost_spent: float = 0.0
    cache_saved: CacheSavings = Field(
        default_factory=CacheSavings, description="turns the model-response cache answered"
    )
    highest_risk: str = "none"
    outcome: str = ""
    awaiting_operator: EffectInDoubt | None = Field(
        default=None, description="set while the run waits for `aios effects resolve`"
    )
    paused_until: datetime | None = Field(
        default=None, description="paused on a daily cap: when the budget day turns and the run resumes"
    )
    day_cap_override: DayCapOverride | None = None
    events_received: list[RunEvent] = Field(
        default_factory=list, description="events for its subject that arrived while it ran (on_busy: signal)"
    )
    delegated_tokens: int = Field(default=0, description="what the run's child runs spent, rolled up")
    delegated_cost: float = 0.0
    handed_up: list[ActionCall] = Field(
        default_factory=list,
        description="a completed child run's undo, handed to its parent's saga (nested sagas)",
    )

    @property
    def ended(self) -> bool:
        """The run has ended (a needs_operator run waiting for an effect's outcome has not)."""
        return self.status.terminal and self.awaiting_operator is None


# Activity messages


# The model is told the results of this many last steps (older ones by name only): each think
# request carries their keys, and a long run's history must not grow with the square of it.
TOLD_STEPS = 8


class DoneStep(Payload):
    """A step the model's next turn is told about; its result is read from the effect ledger
    by `effect_key`, so the history carries the key, not the response."""

    step: int
    action: str
    status: str
    params: dict[str, Any] = Field(default_factory=dict, description="what the model asked for")
    effect_key: str | None = None
    error: str = ""


class PlanRequest(Payload):
    run_id: str
    turn: int
    manifest: AgentManifest
    task: dict[str, Any]
    done_actions: list[str] = Field(default_factory=list, description="executed or decided")
    done: list[DoneStep] = Field(
        default_factory=list,
        description="the last steps, results included (requests from before results carry none)",
    )
    context: list[str] = Field(default_factory=list, description="recalled memories")
    events: list[RunEvent] = Field(default_factory=list, description="events that arrived while it ran")


class PlanResponse(Payload):
    done: bool
    proposals: list[ProposedAction] = Field(default_factory=list)
    text: str = ""
    model: str
    offline: bool
    tokens_used: int = Field(ge=0)
    cost: float = Field(ge=0)
    cached: bool = Field(default=False, description="answered from the model-response cache")
    provider: str = Field(default="", description="the provider that answered")
    fallback: str = Field(
        default="", description="why the manifest's own model did not answer ('' if it did)"
    )
    saved_tokens: int = Field(default=0, ge=0, description="what the cached answer cost when first asked")
    saved_cost: float = Field(default=0.0, ge=0)


class BudgetRequest(Payload):
    agent: str
    run_id: str
    reservation_key: str = Field(description="one per run and turn: a replay reserves nothing new")
    tokens: int = Field(ge=0)
    cost: float = Field(ge=0)
    tokens_per_run: int
    cost_per_run: float
    tokens_per_day: int
    cost_per_day: float
    override_day: bool = Field(
        default=False, description="the daily caps are not checked (operator override)"
    )
    delegated_tokens: int = Field(default=0, ge=0, description="child runs' spend, counted in the run's")
    delegated_cost: float = Field(default=0.0, ge=0)
    ceiling_tokens: int | None = Field(
        default=None, description="a child run: what its parent had left; it may spend no more"
    )
    ceiling_cost: float | None = None


BudgetCap = Literal["", "run", "day"]


class BudgetGrant(Payload):
    granted: bool
    reason: str = ""
    cap: BudgetCap = Field(default="", description="which kind of cap refused: per run, or per day")
    run_tokens: int
    run_cost: float
    day_tokens: int
    day_cost: float


def budget_day(moment: datetime) -> date:
    """The budget day a moment counts in: the UTC calendar day (the daily caps' unit)."""
    return moment.astimezone(UTC).date()


def next_budget_day(moment: datetime) -> datetime:
    """When the budget day after `moment`'s begins: the next 00:00 UTC."""
    return datetime.combine(budget_day(moment) + timedelta(days=1), time(0), tzinfo=UTC)


def reservation_key(run_id: str, turn: int) -> str:
    """One budget reservation per run and turn: a replay or a retry reserves nothing new."""
    return f"{run_id}/turn-{turn}"


class ActionCall(Payload):
    run_id: str
    step: int
    effect_key: str
    action: str
    connector: str
    params: dict[str, Any] = Field(default_factory=dict)
    amount: float | None = None
    target: str | None = None
    original: dict[str, Any] | None = Field(
        default=None, description="for a compensation: the response of the effect it undoes"
    )
    inline: bool = Field(default=False, description="its action is `inline`: a local activity")

    @classmethod
    def for_step(cls, run_id: str, step: int, proposed: ProposedAction, spec: ActionSpec) -> ActionCall:
        """The call of an approved proposal; its effect key names run, step and action."""
        return cls(
            run_id=run_id,
            step=step,
            effect_key=f"{run_id}/step-{step}/{proposed.action}",
            action=proposed.action,
            connector=spec.connector,
            params=proposed.params,
            amount=proposed.amount,
            target=spec.target,
            inline=spec.inline,
        )


class ActionResult(Payload):
    status: Literal["succeeded", "failed"]
    response: dict[str, Any] = Field(default_factory=dict)
    replayed: bool = Field(default=False, description="the ledger already had this effect's outcome")
    error: str = ""
    error_type: str = Field(default="", description="for a failed act: the error's type, e.g. EffectConflict")


class RecallRequest(Payload):
    agent: str
    task: dict[str, Any]
    top_k: int
    token_budget: int


class RecallResult(Payload):
    memories: list[str] = Field(default_factory=list)
    tokens: int = 0


class Settlement(Payload):
    """What a turn's model call really used, replacing its reservation's estimate."""

    reservation_key: str
    tokens: int = Field(ge=0)
    cost: float = Field(ge=0)
    cached: bool = False
    saved_tokens: int = Field(default=0, ge=0)
    saved_cost: float = Field(default=0.0, ge=0)

    @classmethod
    def of(cls, reservation_key: str, plan: PlanResponse) -> Settlement:
        """The turn's settlement: what its plan used, and what a cache hit saved."""
        return cls(
            reservation_key=reservation_key,
            tokens=plan.tokens_used,
            cost=plan.cost,
            cached=plan.cached,
            saved_tokens=plan.saved_tokens,
            saved_cost=plan.saved_cost,
        )


class ThinkResult(Payload):
    grant: BudgetGrant
    plan: PlanResponse | None = Field(default=None, description="None when the budget refused")
    acted: ActionResult | None = Field(default=None, description="the outcome of the request's act")
    act_key: str | None = Field(default=None, description="the effect key of the act performed")
    chained: list[ThinkResult] = Field(
        default_factory=list, description="the turns the activity took on its own after this one"
    )


class SlotRequest(Payload):
    agent: str
    run_id: str
    limit: int = Field(gt=0)


class AuditEventRef(Payload):
    """An audit row as the workflow describes it; the activity adds the trace id."""

    key: str
    step: str
    actor: str
    action: str
    outcome: str
    rationale: str = ""
    detail: dict[str, Any] = Field(default_factory=dict)


class RecordRequest(Payload):
    """What a step leaves behind: audit rows, and the run's state mirrored to Postgres."""

    state: RunState
    task: dict[str, Any]
    paired_with: str | None = None
    events: list[AuditEventRef] = Field(default_factory=list)
    settle: Settlement | None = Field(default=None, description="the last turn's real usage, if unsettled")
    release: SlotRequest | None = Field(default=None, description="the run's last record frees its slot")


class ThinkRequest(Payload):
    """One turn's model call, preceded by its budget reservation, in one activity.

    `record` carries the bookkeeping of the steps since the last record (the previous turn's
    settlement, audit rows, state mirror): it commits in the reservation's transaction, so
    a step costs one bookkeeping transaction instead of three.
    """

    plan: PlanRequest
    budget: BudgetRequest
    record: RecordRequest | None = None
    settle_later: bool = Field(
        default=False, description="the workflow settles this turn's usage in its next record"
    )
    act: ActionCall | None = Field(
        default=None, description="an approved inline action, performed (through the ledger) first"
    )
    chain: int = Field(
        default=0,
        ge=0,
        description="further turns the activity may take on its own, while each plan is one "
        "action the policy approves outright on an inline connector",
    )
    next_step: int = Field(default=0, ge=0, description="the step number of this turn's proposal")


class RunCarry(Payload):
    """What a run hands to its continuation (continue-as-new): everything its code keeps.

    Built and read by iterating workflows/run_progress.py's `carried` fields: a field there
    is a field here of the same name, with a default so carries already in flight still read.
    """

    state: RunState
    step: int = Field(ge=0, description="the last step number used")
    paused: bool = False
    resumes: int = 0
    extra_tokens: int = 0
    extra_cost: float = 0.0
    override_day: bool = False
    event_count: int = Field(ge=0, description="audit keys go on from here")
    compensations: list[ActionCall] = Field(default_factory=list, description="the saga, oldest first")
    children: int = Field(default=0, ge=0, description="child runs started (the fan-out limit counts them)")
    continuations: int = Field(ge=1, description="how many histories the run has had before this one")


RunInput.model_rebuild()
RunState.model_rebuild()
ThinkResult.model_rebuild()
