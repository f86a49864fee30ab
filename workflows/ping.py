"""The walking skeleton: one workflow that exercises every layer of the stack."""

from __future__ import annotations

import hashlib
from datetime import timedelta

from temporalio import workflow

with workflow.unsafe.imports_passed_through():
    from activities.audit import AuditActivities
    from aios.models import AuditEvent, PingInput, PingResult


@workflow.defn(name="Ping")
class PingWorkflow:
    """Writes one audit row through an activity and returns its id."""

    @workflow.run
    async def run(self, request: PingInput) -> PingResult:
        info = workflow.info()
        receipt = await workflow.execute_activity_method(
            AuditActivities.record,
            AuditEvent(
                event_key=f"{info.workflow_id}/ping",
                run_id=info.workflow_id,
                step="ping",
                actor=request.actor,
                action="ping",
                outcome="recorded",
                rationale="walking skeleton: proves client, Temporal, worker and Postgres work",
                # The audit keeps a fingerprint, not the text: payloads stay out of plain-text stores.
                detail={"message_sha256": hashlib.sha256(request.message.encode()).hexdigest()},
            ),
            start_to_close_timeout=timedelta(seconds=30),
        )
        return PingResult(workflow_id=info.workflow_id, message=request.message, audit_id=receipt.audit_id)
