"""Connector health as workers report it: each worker upserts its breakers' state."""

from __future__ import annotations

from typing import Any

from psycopg import AsyncConnection

from connectors.breaker import BreakerSnapshot

REPORT = """
INSERT INTO aios_connector_health
    (worker_id, connector, state, consecutive_failures, window_calls, window_failures, times_opened)
VALUES (%s, %s, %s, %s, %s, %s, %s)
ON CONFLICT (worker_id, connector) DO UPDATE SET state = EXCLUDED.state,
    consecutive_failures = EXCLUDED.consecutive_failures, window_calls = EXCLUDED.window_calls,
    window_failures = EXCLUDED.window_failures, times_opened = EXCLUDED.times_opened, reported_at = now()
"""
RECENT = """
SELECT connector, worker_id, state, consecutive_failures, window_calls, window_failures, times_opened,
       reported_at
FROM aios_connector_health WHERE reported_at > now() - make_interval(secs => %s)
ORDER BY connector, worker_id
"""
FORGET_WORKER = "DELETE FROM aios_connector_health WHERE worker_id = %s"


async def report(conn: AsyncConnection[Any], worker_id: str, snapshots: list[BreakerSnapshot]) -> None:
    for snapshot in snapshots:
        await conn.execute(
            REPORT,
            (
                worker_id,
                snapshot.name,
                snapshot.state,
                snapshot.consecutive_failures,
                snapshot.window_calls,
                snapshot.window_failures,
                snapshot.times_opened,
            ),
        )


async def recent(conn: AsyncConnection[Any], within_seconds: float = 120) -> list[dict[str, Any]]:
    cursor = await conn.execute(RECENT, (within_seconds,))
    columns = [column.name for column in cursor.description or []]
    return [dict(zip(columns, row, strict=True)) for row in await cursor.fetchall()]


async def forget_worker(conn: AsyncConnection[Any], worker_id: str) -> None:
    await conn.execute(FORGET_WORKER, (worker_id,))
