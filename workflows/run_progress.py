"""The one state of an agent run, which every layer receives, and the actions cleared to run.

Plain data, no workflow calls. `AgentRunWorkflow` builds one `RunProgress` and hands it to
its layers (bookkeeping, approval gate, operator interface): state that crosses layers is a
field here, never an attribute one layer declares and another sets. Every field says how it
crosses continue-as-new, and the carry is built from those declarations:

- `shown`: part of the RunState that `snapshot()` returns (the `state` query, the records,
  and the carry's `state`);
- `carried`: a field of RunCarry of the same name, copied both ways by iterating the fields;
- `this_history`: lives in one history only, with the reason it need not be carried.

tests/unit/test_run_progress.py sets every field, carries it, restores it and compares: a
field added later is either carried or says why not.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from datetime import datetime
from types import MappingProxyType
from typing import Any, ClassVar, Literal, Self

from temporalio import workflow

from workflows.saga import Saga

with workflow.unsafe.imports_passed_through():
    from aios.models.events import RunEvent
    from aios.models.manifest import ActionSpec, RiskClass
    from aios.models.run import (
        ActionCall,
        AuditEventRef,
        CacheSavings,
        DayCapOverride,
        EffectInDoubt,
        PendingApproval,
        Proposal,
        RefusedDecision,
        RunCarry,
        RunInput,
        RunState,
        RunStatus,
        Settlement,
        StepRecord,
    )

Verdict = Literal["approve", "reject"]
GateVerdict = tuple[Verdict, str, str]  # the verdict at a gate, who gave it, their note

CROSSING = "crossing"  # the metadata key: how a field crosses continue-as-new
Crossing = Literal["shown", "carried", "this_history"]
# In the RunState snapshot (under its own name there, see `snapshot`).
SHOWN: Mapping[str, str] = MappingProxyType({CROSSING: "shown"})
# A field of RunCarry of the same name.
CARRIED: Mapping[str, str] = MappingProxyType({CROSSING: "carried"})


def this_history(why: str) -> Mapping[str, str]:
    """Metadata of a field that lives in one history: `why` says why it need not be carried."""
    return MappingProxyType({CROSSING: "this_history", "why": why})


@dataclass(frozen=True)
class ApprovedAct:
    """An action the policy or a person approved, with the call that performs it."""

    proposal: Proposal
    spec: ActionSpec
    decided_by: str
    call: ActionCall


@dataclass(eq=False)
class RunProgress:
    """Mutable working state of one run; `snapshot()` turns it into the frozen RunState."""

    # The carry's model; a subclass that adds carried fields names its own.
    carry_model: ClassVar[type[RunCarry]] = RunCarry

    request: RunInput
    run_id: str
    # -- shown: the RunState ----------------------------------------------------------------
    status: RunStatus = field(default=RunStatus.QUEUED, metadata=SHOWN)
    turn: int = field(default=0, metadata=SHOWN)
    proposals: list[Proposal] = field(default_factory=list, metadata=SHOWN)
    steps: list[StepRecord] = field(default_factory=list, metadata=SHOWN)
    refused: list[RefusedDecision] = field(default_factory=list, metadata=SHOWN)
    pending: PendingApproval | None = field(default=None, metadata=SHOWN)
    tokens: int = field(default=0, metadata=SHOWN)
    cost: float = field(default=0.0, metadata=SHOWN)
    cache_saved: CacheSavings = field(default_factory=CacheSavings, metadata=SHOWN)
    highest_risk: RiskClass | None = field(default=None, metadata=SHOWN)
    outcome: str = field(default="", metadata=SHOWN)
    recalled: list[str] = field(default_factory=list, metadata=SHOWN)
    awaiting_operator: EffectInDoubt | None = field(default=None, metadata=SHOWN)
    paused_until: datetime | None = field(default=None, metadata=SHOWN)
    day_cap_override: DayCapOverride | None = field(default=None, metadata=SHOWN)
    received: list[RunEvent] = field(default_factory=list, metadata=SHOWN)
    # What the run's child runs spent (workflows/delegation.py): counted against its run budget.
    delegated_tokens: int = field(default=0, metadata=SHOWN)
    delegated_cost: float = field(default=0.0, metadata=SHOWN)
    # -- carried: RunCarry's own fields ---------------------------------------------------
    # The last step number used.
    step: int = field(default=0, metadata=CARRIED)
    # Held by the operator's pause.
    paused: bool = field(default=False, metadata=CARRIED)
    # Resume signals taken: a budget pause waits for one more.
    resumes: int = field(default=0, metadata=CARRIED)
    # Budget the operator added to this run on resuming.
    extra_tokens: int = field(default=0, metadata=CARRIED)
    extra_cost: float = field(default=0.0, metadata=CARRIED)
    # This run's remaining turns may go past the agent's daily caps.
    override_day: bool = field(default=False, metadata=CARRIED)
    # Audit keys go on from here.
    event_count: int = field(default=0, metadata=CARRIED)
    # Child runs started: the fan-out limit counts them, and each child's id is derived from its step.
    children: int = field(default=0, metadata=CARRIED)
    # -- this history only ----------------------------------------------------------------
    # Set by the run from its patch before its first command; False until then.
    fused: bool = field(default=False, metadata=this_history("set from its patch in every history"))
    # Audit rows not yet recorded.
    events: list[AuditEventRef] = field(
        default_factory=list, metadata=this_history("recorded before the run continues")
    )
    # The last turn's real usage, not yet settled.
    unsettled: Settlement | None = field(
        default=None, metadata=this_history("settled by the record before the run continues")
    )
    # The decision at the gate a step waits at.
    verdict: GateVerdict | None = field(
        default=None, metadata=this_history("a run continues between turns, never at a gate")
    )
    # `effect_resolved` signals taken: a run waiting for an effect in doubt reads the ledger.
    effect_nudges: int = field(
        default=0, metadata=this_history("compared only with a count taken while waiting; none waits then")
    )
    # The undo of every finished step.
    saga: Saga[ActionCall] = field(
        default_factory=Saga, metadata=this_history("carried as RunCarry.compensations")
    )

    @classmethod
    def resumed(cls, request: RunInput, run_id: str) -> Self:
        """A run's state at the start of a history: fresh, or from the previous one's carry."""
        progress = cls(request, run_id, paused=request.start_paused)
        if request.continued is not None:
            progress.restore(request.continued)
        return progress

    @classmethod
    def crossing(cls, kind: Crossing) -> list[str]:
        """The names of the fields that cross continue-as-new as `kind` says."""
        return [each.name for each in fields(cls) if each.metadata.get(CROSSING) == kind]

    def carry(self, continuations: int) -> RunCarry:
        """What the next history starts from (continue-as-new); the inverse of `restore`."""
        own: dict[str, Any] = {name: getattr(self, name) for name in self.crossing("carried")}
        return self.carry_model.model_validate(
            {
                "state": self.snapshot(),
                **own,
                "compensations": self.saga.pending,
                "continuations": continuations,
            }
        )

    def restore(self, carry: RunCarry) -> None:
        """Take up where the previous history of the run stopped."""
        self._restore_state(carry.state)
        for name in self.crossing("carried"):
            setattr(self, name, getattr(carry, name))
        for compensation in carry.compensations:
            self.saga.add(compensation)

    def _restore_state(self, state: RunState) -> None:
        self.status = state.status
        self.turn = state.turn
        self.pending = state.pending_approval
        self.proposals = list(state.proposals)
        self.steps = list(state.steps)
        self.refused = list(state.refused_decisions)
        self.recalled = list(state.recalled)
        self.tokens = state.tokens_spent
        self.cost = state.cost_spent
        self.cache_saved = state.cache_saved
        self.highest_risk = None if state.highest_risk == "none" else RiskClass(state.highest_risk)
        self.outcome = state.outcome
        self.awaiting_operator = state.awaiting_operator
        self.paused_until = state.paused_until
        self.day_cap_override = state.day_cap_override
        self.received = list(state.events_received)
        self.delegated_tokens = state.delegated_tokens
        self.delegated_cost = state.delegated_cost

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
            cache_saved=self.cache_saved,
            highest_risk=self.highest_risk.value if self.highest_risk else "none",
            outcome=self.outcome,
            awaiting_operator=self.awaiting_operator,
            paused_until=self.paused_until,
            day_cap_override=self.day_cap_override,
            events_received=list(self.received),
            delegated_tokens=self.delegated_tokens,
            delegated_cost=round(self.delegated_cost, 6),
        )
