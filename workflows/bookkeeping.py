"""What an agent run writes down and shows: audit events, step records, status, records.

`RunBookkeeping` is the lowest layer of AgentRun (bookkeeping, then the approval gate, then
the operator interface, then the run itself). Events collect in memory and leave with the
next record, a local activity, or, when bookkeeping is fused, inside the next turn's
reservation transaction. Status changes are mirrored at once in the search attributes and
the Web UI's details, so the Web UI can filter and explain a run.
"""

from __future__ import annotations

import asyncio
from datetime import timedelta
from typing import Any

from temporalio import workflow

from workflows.run_progress import RunProgress
from workflows.versions import RECORD_CHECKPOINTS_PATCH

with workflow.unsafe.imports_passed_through():
    from activities.agent import AgentActivities
    from aios.models.manifest import ActionSpec, Grade
    from aios.models.run import (
        AuditEventRef,
        RecordRequest,
        RunInput,
        RunStatus,
        SlotRequest,
        StepRecord,
        StepStatus,
    )
    from aios.temporal.search_attributes import RISK_KEY, STATE_KEY

BOOKKEEPING_TIMEOUT = timedelta(seconds=30)
# Only for runs from before record-checkpoints (versions.py): they ended a workflow task with a
# 1 ms timer, which a server may fire a second late (the dev server's timer queue shifts by up
# to 1 s); a regular activity on the run's own queue is started eagerly, in milliseconds.
TIMER_CHECKPOINT = timedelta(milliseconds=1)


class RunBookkeeping:
    def __init__(self, request: RunInput, run: RunProgress) -> None:
        # The run's one state, shared by every layer: see run_progress.py.
        self._run = run
        self._manifest = request.manifest

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
            pending = run.pending
            approver = pending.approvers[0]
            lines.append(
                f"waiting for approval of step {pending.step} ({pending.action}) "
                f"by {', '.join(pending.approvers)}"
            )
            # What settles it, from here: the decide update's JSON, or the command.
            lines.append(
                f'settle: update **decide** with `{{"verdict": "approve", "decision": {{"approver": '
                f'"{approver}", "step": {pending.step}}}}}` or `aios approve {run.run_id} --step '
                f"{pending.step} --as {approver}` (`aios inbox` lists everything waiting)"
            )
        doubt = run.awaiting_operator
        if doubt is not None:
            lines.append(
                f"**needs the operator**: the outcome of step {doubt.step} ({doubt.action}) is unknown. "
                f"Check the service, then `aios effects resolve {doubt.effect_key} --applied` "
                "(or `--not-applied`) `--as NAME --note TEXT`"
            )
        if run.paused_until is not None:
            lines.append(f"paused on a daily cap until {run.paused_until.isoformat()} (the budget day turns)")
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
        self._run.event_count += 1
        self._run.events.append(
            AuditEventRef(
                key=f"{self._run.run_id}/e{self._run.event_count}",
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

    async def _end_workflow_task(self) -> None:
        """Make the run's progress durable now (the local activities' markers go to history),
        and let updates and queries that waited for the workflow task be answered."""
        if workflow.patched(RECORD_CHECKPOINTS_PATCH):
            await workflow.execute_activity_method(
                AgentActivities.record, self._record_request(), start_to_close_timeout=BOOKKEEPING_TIMEOUT
            )
        else:
            await workflow.sleep(TIMER_CHECKPOINT)

    async def _step_recorded(self) -> None:
        """A finished step's record: now, or (fused) with the next turn's reservation."""
        if not self._run.fused:
            await self._record()

    def _start_record(self, release: SlotRequest | None = None) -> asyncio.Future[None]:
        return workflow.start_local_activity_method(
            AgentActivities.record, self._record_request(release), start_to_close_timeout=BOOKKEEPING_TIMEOUT
        )

    def _record_request(self, release: SlotRequest | None = None) -> RecordRequest:
        """Everything not yet written: the events since the last record, the state, the usage."""
        events, self._run.events = self._run.events, []
        settle, self._run.unsettled = self._run.unsettled, None
        return RecordRequest(
            state=self._run.snapshot(),
            task=self._run.request.task,
            paired_with=self._run.request.paired_with,
            events=events,
            settle=settle,
            release=release,
        )
