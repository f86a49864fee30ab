"""The working state of one agent run, and the actions cleared to run.

Plain data, no workflow calls: every layer of AgentRun reads and changes `RunProgress`, and
`snapshot()` is the frozen RunState the `state` query, the records and continue-as-new carry.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from temporalio import workflow

with workflow.unsafe.imports_passed_through():
    from aios.models.manifest import ActionSpec, RiskClass
    from aios.models.run import (
        ActionCall,
        DayCapOverride,
        EffectInDoubt,
        PendingApproval,
        Proposal,
        RefusedDecision,
        RunInput,
        RunState,
        RunStatus,
        StepRecord,
    )


@dataclass(frozen=True)
class ApprovedAct:
    """An action the policy or a person approved, with the call that performs it."""

    proposal: Proposal
    spec: ActionSpec
    decided_by: str
    call: ActionCall


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
        self.awaiting_operator: EffectInDoubt | None = None
        self.paused_until: datetime | None = None
        self.day_cap_override: DayCapOverride | None = None

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
        self.day_cap_override = state.day_cap_override

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
            awaiting_operator=self.awaiting_operator,
            paused_until=self.paused_until,
            day_cap_override=self.day_cap_override,
        )
