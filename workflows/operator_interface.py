"""How the operator talks to a run: signals (Web UI), the `decide` update (CLI), the query.

`OperatorInterface` builds on the approval gate. Its handlers are registered on AgentRun
because `@workflow.defn` collects signal, update and query handlers from the class's base
classes too; only `@workflow.run` must be on the workflow class itself. The names here
(`approve`, `reject`, `decide`, `pause`, `resume`, `effect_resolved`, `state`) are the run's
public interface: renaming one breaks every run in flight and every operator's habits.

Payloads are taken raw and decoded here, so a malformed one is refused with a reason that
names its field, recorded in the run's state and audit trail, and harms nothing.
"""

from __future__ import annotations

from typing import Any, TypeVar

from temporalio import workflow
from temporalio.common import RawValue

from workflows.approval_gate import ApprovalGate, Verdict

with workflow.unsafe.imports_passed_through():
    from pydantic import BaseModel, ValidationError

    from aios.models.run import (
        DayCapOverride,
        Decision,
        DecisionOutcome,
        DecisionRequest,
        EffectResolution,
        ResumeRequest,
        RunInput,
        RunState,
    )

DECIDE_SHAPE = (
    '{"verdict": "approve" | "reject", "decision": {"approver": "<name>", "note": "", "step": null}}'
)

ModelT = TypeVar("ModelT", bound=BaseModel)


class PauseRequest(BaseModel):
    by: str = "operator"
    reason: str = ""


class OperatorInterface(ApprovalGate):
    def __init__(self, request: RunInput) -> None:
        super().__init__(request)
        self._paused = request.start_paused
        self._resumes = 0
        self._extra_tokens = 0
        self._extra_cost = 0.0
        self._override_day = False  # this run's remaining turns may go past the daily caps
        self._effect_nudges = 0  # `effect_resolved` signals taken: the waiting run reads the ledger

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
            problem = first_line(error)
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
        if request.override_day and not self._override_day:
            self._override_day = True
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

    @workflow.signal(name="effect_resolved")
    async def effect_resolved_signal(self, payload: RawValue) -> None:
        """`aios effects resolve` settled one of this run's effects in the ledger: a nudge, so a
        run waiting on it reads the ledger again (the ledger, not this signal, is the truth)."""
        resolution = self._parse(EffectResolution, payload, "effect_resolved")
        if resolution is not None:
            if resolution.effect_key.startswith(f"{self._run.run_id}/"):
                self._effect_nudges += 1
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
            self._refuse(f"{what} {received}", f"malformed {what}: {first_line(error)}")
            return None


def first_line(error: Exception) -> str:
    """A refusal's reason: one line per wrong field, or the error's first line."""
    if isinstance(error, ValidationError):
        # "decision.approver: Input should be a valid string", one per wrong field.
        return "; ".join(
            f"{'.'.join(str(part) for part in problem['loc']) or 'payload'}: {problem['msg']}"
            for problem in error.errors()
        )[:300]
    return str(error).strip().splitlines()[0][:200] if str(error).strip() else type(error).__name__
