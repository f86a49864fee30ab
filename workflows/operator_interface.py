"""How the operator talks to a run: signals (Web UI), the `decide` update (CLI), the query.

`OperatorInterface` builds on the approval gate. Its handlers are registered on AgentRun
because `@workflow.defn` collects signal, update and query handlers from the class's base
classes too; only `@workflow.run` must be on the workflow class itself. The names here
(`approve`, `reject`, `decide`, `pause`, `resume`, `effect_resolved`, `state`) are the run's
public interface: renaming one breaks every run in flight and every operator's habits.

Every handler takes its input through the one door of workflows/inbound.py: any count and
shape arrives, a malformed one is refused with a reason that names its field and the shape
expected, recorded in the run's state and audit trail, and harms nothing.
"""

from __future__ import annotations

from datetime import timedelta

from temporalio import workflow

from workflows.approval_gate import ApprovalGate
from workflows.inbound import inbound_signal, inbound_update
from workflows.run_progress import Verdict
from workflows.versions import VERIFIED_DECISIONS_PATCH

with workflow.unsafe.imports_passed_through():
    from activities.approvals import ApprovalActivities
    from aios.models.events import RunEvent
    from aios.models.run import (
        DayCapOverride,
        Decision,
        DecisionOutcome,
        DecisionRequest,
        EffectResolution,
        LinkCheck,
        PauseRequest,
        ResumeRequest,
        RunState,
    )
    from aios.temporal.inbound import InputRefused

# Checking a link is one indexed read and an HMAC.
VERIFY_TIMEOUT = timedelta(seconds=30)


class OperatorInterface(ApprovalGate):
    @inbound_signal("approve", Decision, description='Approve the waiting step: {"approver": "<name>"}')
    async def approve_signal(self, decision: Decision) -> None:
        await self._signalled_decision("approve", decision)

    @inbound_signal("reject", Decision, description='Reject the waiting step: {"approver": "<name>"}')
    async def reject_signal(self, decision: Decision) -> None:
        await self._signalled_decision("reject", decision)

    async def _signalled_decision(self, verdict: Verdict, decision: Decision) -> None:
        # A signal is what the Web UI's form sends: whatever channel it claims, it is one.
        verified, problem = await self._verified(verdict, decision)
        self._decide(verdict, decision, channel="web_ui_signal", verified=verified, link_problem=problem)
        await self._record()

    async def _verified(self, verdict: Verdict, decision: Decision) -> tuple[bool, str]:
        """(verified, problem): a decision carrying a signed link's token is checked by an
        activity (the run cannot read the approver's secret); one without a token is unverified."""
        pending = self._run.pending
        if decision.token is None or pending is None or not workflow.patched(VERIFIED_DECISIONS_PATCH):
            return False, ""
        checked = await workflow.execute_local_activity_method(
            ApprovalActivities.verify_link,
            LinkCheck(
                run_id=self._run.run_id,
                step=decision.step if decision.step is not None else pending.step,
                verdict=verdict,
                approver=decision.approver,
                token=decision.token,
            ),
            start_to_close_timeout=VERIFY_TIMEOUT,
        )
        if not checked.verified:
            return False, f"the signed link did not check out: {checked.reason}"
        return True, ""

    @inbound_update(
        "decide",
        DecisionRequest,
        description='Approve or reject, answered at once: {"verdict": "approve", "decision": {...}}',
        check="_decision_may_matter",
    )
    async def decide_update(self, request: DecisionRequest) -> DecisionOutcome:
        decision = request.decision
        verified, problem = await self._verified(request.verdict, decision)
        channel = decision.channel if decision.channel not in (None, "web_ui_signal") else "update"
        assert channel is not None
        outcome = self._decide(
            request.verdict, decision, channel=channel, verified=verified, link_problem=problem
        )
        await self._record()
        return outcome

    def _decision_may_matter(self, request: DecisionRequest) -> None:
        # Refused by the validator, nothing enters history: only requests that could matter.
        pending = self._run.pending
        if pending is None or self._run.verdict is not None:
            raise ValueError("no approval is pending for this run (a late or duplicate decision)")
        if request.decision.step is not None and request.decision.step != pending.step:
            raise ValueError(
                f"step {request.decision.step} is not waiting for approval; step {pending.step} is"
            )

    @inbound_signal("pause", PauseRequest, description='Hold the run before its next step: {"by": "<name>"}')
    async def pause_signal(self, request: PauseRequest) -> None:
        if not self._run.paused:
            self._run.paused = True
            self._event("control", request.by, "pause", "requested", rationale=request.reason)
            await self._record()

    @inbound_signal("resume", ResumeRequest, description='Go on after a pause: {"by": "<name>"}')
    async def resume_signal(self, request: ResumeRequest) -> None:
        self._run.paused = False
        self._run.extra_tokens += request.extra_tokens
        self._run.extra_cost += request.extra_cost
        self._run.resumes += 1
        if request.override_day and not self._run.override_day:
            self._run.override_day = True
            self._run.day_cap_override = DayCapOverride(by=request.by, at=workflow.now())
        self._event(
            "control",
            request.by,
            "resume",
            "requested",
            rationale="past the agent's daily caps, for this run's remaining turns"
            if request.override_day
            else "",
            detail={
                "extra_tokens": request.extra_tokens,
                "extra_cost": request.extra_cost,
                "override_day": request.override_day,
            },
        )
        await self._record()

    @inbound_signal(
        "effect_resolved",
        EffectResolution,
        description="Sent by `aios effects resolve`: an effect in doubt was settled in the ledger",
    )
    async def effect_resolved_signal(self, resolution: EffectResolution) -> None:
        """`aios effects resolve` settled one of this run's effects in the ledger: a nudge, so a
        run waiting on it reads the ledger again (the ledger, not this signal, is the truth)."""
        if resolution.effect_key.startswith(f"{self._run.run_id}/"):
            self._run.effect_nudges += 1
            self._event(
                "effect",
                resolution.by,
                "resolve_effect",
                f"told:{resolution.outcome}",
                rationale=resolution.note,
                detail={"effect_key": resolution.effect_key},
            )
        else:
            self._refuse(
                f"effect_resolved {resolution.model_dump_json()}",
                f"effect {resolution.effect_key!r} is not one of this run's",
            )
        await self._record()

    @inbound_signal(
        "event",
        RunEvent,
        description="An event for this run's subject (on_busy: signal); the next turn sees it",
    )
    async def event_signal(self, event: RunEvent) -> None:
        # A redelivered event (its sender retried) is taken once.
        if any(seen.event_id == event.event_id for seen in self._run.received):
            return
        self._run.received.append(event)
        self._event("event", f"event:{event.event_id}", "deliver", "received", detail={"topic": event.topic})
        await self._record()

    @workflow.query(name="state")
    def state_query(self) -> RunState:
        return self._run.snapshot()

    async def _refuse_input(self, handler: str, refused: InputRefused) -> None:
        """A malformed signal or update input: refused, recorded, and it harms nothing."""
        self._refuse(f"{handler} {refused.received}", refused.reason)
        await self._record()
