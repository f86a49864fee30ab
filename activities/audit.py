"""Audit activities: every step and decision becomes one chained row, written once."""

from __future__ import annotations

from collections.abc import Sequence

from psycopg_pool import AsyncConnectionPool
from temporalio import activity

from aios.governance.audit import AuditEntry, append
from aios.governance.subjects import SubjectKey
from aios.models import AuditEvent, AuditReceipt
from aios.models.run import AuditEventRef, RunState
from aios.observability.telemetry import current_trace_id


class AuditActivities:
    def __init__(self, pool: AsyncConnectionPool) -> None:
        self._pool = pool

    @activity.defn(name="audit.record")
    async def record(self, event: AuditEvent) -> AuditReceipt:
        """Idempotent by event key: a retry finds the row it wrote and reports it as not new."""
        entry = AuditEntry(
            event_key=event.event_key,
            run_id=event.run_id,
            step=event.step,
            actor=event.actor,
            action=event.action,
            outcome=event.outcome,
            rationale=event.rationale,
            detail=event.detail,
            trace_id=current_trace_id(),
        )
        async with self._pool.connection() as conn:
            (appended,) = await append(conn, [entry])
        return AuditReceipt(audit_id=appended.audit_id, newly_recorded=appended.newly_recorded)


def run_entries(
    events: Sequence[AuditEventRef],
    state: RunState,
    trace_id: str | None,
    *,
    sealed_with: SubjectKey | None = None,
) -> list[AuditEntry]:
    """An agent run's events as audit entries, each naming the manifest version it ran under,
    sealed with the key of the run's subject when it has one."""
    return [
        AuditEntry(
            event_key=event.key,
            run_id=state.run_id,
            step=event.step,
            actor=event.actor,
            action=event.action,
            outcome=event.outcome,
            rationale=event.rationale,
            # Kept in detail as before (readers may look for it there), and in its own column.
            detail={**event.detail, "manifest_version": state.manifest_version},
            manifest_version=state.manifest_version,
            trace_id=trace_id,
            sealed_with=sealed_with,
        )
        for event in events
    ]
