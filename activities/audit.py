"""Audit activities: every step and decision becomes one row, written once."""

from __future__ import annotations

from psycopg.types.json import Jsonb
from psycopg_pool import AsyncConnectionPool
from temporalio import activity

from aios.models import AuditEvent, AuditReceipt
from aios.telemetry import current_trace_id

# ON CONFLICT makes a retried activity a no-op; the second statement then finds the row.
INSERT_AUDIT = """
INSERT INTO aios_audit (event_key, run_id, step, actor, action, outcome, rationale, detail, trace_id)
VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s)
ON CONFLICT (event_key) DO NOTHING
RETURNING id
"""
FIND_AUDIT = "SELECT id FROM aios_audit WHERE event_key = %s"


class AuditActivities:
    def __init__(self, pool: AsyncConnectionPool) -> None:
        self._pool = pool

    @activity.defn(name="audit.record")
    async def record(self, event: AuditEvent) -> AuditReceipt:
        async with self._pool.connection() as conn:
            cursor = await conn.execute(
                INSERT_AUDIT,
                (
                    event.event_key,
                    event.run_id,
                    event.step,
                    event.actor,
                    event.action,
                    event.outcome,
                    event.rationale,
                    Jsonb(event.detail),
                    current_trace_id(),
                ),
            )
            row = await cursor.fetchone()
            if row is not None:
                return AuditReceipt(audit_id=row[0], newly_recorded=True)
            cursor = await conn.execute(FIND_AUDIT, (event.event_key,))
            existing = await cursor.fetchone()
            assert existing is not None, "a conflicting row cannot vanish inside one connection"
            return AuditReceipt(audit_id=existing[0], newly_recorded=False)
