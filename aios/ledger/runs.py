"""Run bookkeeping in Postgres: concurrency slots, the kill switch, rollouts, state mirrors."""

from __future__ import annotations

from typing import Any

from psycopg import AsyncConnection
from psycopg.types.json import Jsonb

from aios.models.manifest import AgentManifest
from aios.models.run import RunState

LOCK_SLOTS = "SELECT pg_advisory_xact_lock(hashtext('aios-slots:' || %s))"
HOLDS_SLOT = "SELECT 1 FROM aios_run_slots WHERE agent = %s AND run_id = %s"
COUNT_SLOTS = "SELECT count(*) FROM aios_run_slots WHERE agent = %s"
TAKE_SLOT = "INSERT INTO aios_run_slots (agent, run_id) VALUES (%s, %s)"
RELEASE_SLOT = "DELETE FROM aios_run_slots WHERE agent = %s AND run_id = %s"


async def acquire_slot(conn: AsyncConnection[Any], *, agent: str, run_id: str, limit: int) -> bool:
    """Take one of the agent's `limit` slots; True also when this run already holds one."""
    async with conn.transaction():
        await conn.execute(LOCK_SLOTS, (agent,))
        if await (await conn.execute(HOLDS_SLOT, (agent, run_id))).fetchone():
            return True
        row = await (await conn.execute(COUNT_SLOTS, (agent,))).fetchone()
        if row is not None and int(row[0]) >= limit:
            return False
        await conn.execute(TAKE_SLOT, (agent, run_id))
        return True


async def release_slot(conn: AsyncConnection[Any], *, agent: str, run_id: str) -> None:
    await conn.execute(RELEASE_SLOT, (agent, run_id))


SLOT_HOLDERS = "SELECT agent, run_id FROM aios_run_slots WHERE (%(agent)s::text IS NULL OR agent = %(agent)s)"


async def slot_holders(conn: AsyncConnection[Any], agent: str | None = None) -> list[tuple[str, str]]:
    """(agent, run id) of every slot held: one agent's, or (None) every agent's."""
    cursor = await conn.execute(SLOT_HOLDERS, {"agent": agent})
    return [(str(row[0]), str(row[1])) for row in await cursor.fetchall()]


SET_AGENT_PAUSED = """
INSERT INTO aios_agent_controls (agent, paused, changed_by) VALUES (%s, %s, %s)
ON CONFLICT (agent) DO UPDATE SET paused = EXCLUDED.paused, changed_by = EXCLUDED.changed_by,
    changed_at = now()
"""
AGENT_PAUSED = "SELECT paused FROM aios_agent_controls WHERE agent = %s"


async def set_agent_paused(conn: AsyncConnection[Any], *, agent: str, paused: bool, by: str) -> None:
    await conn.execute(SET_AGENT_PAUSED, (agent, paused, by))


async def agent_paused(conn: AsyncConnection[Any], agent: str) -> bool:
    row = await (await conn.execute(AGENT_PAUSED, (agent,))).fetchone()
    return bool(row[0]) if row else False


SET_ROLLOUT = """
INSERT INTO aios_rollouts (agent, candidate, candidate_version, share, mode) VALUES (%s, %s, %s, %s, %s)
ON CONFLICT (agent) DO UPDATE SET candidate = EXCLUDED.candidate,
    candidate_version = EXCLUDED.candidate_version, share = EXCLUDED.share, mode = EXCLUDED.mode,
    created_at = now()
"""
GET_ROLLOUT = "SELECT candidate, share, mode FROM aios_rollouts WHERE agent = %s"
END_ROLLOUT = "DELETE FROM aios_rollouts WHERE agent = %s"


async def set_rollout(
    conn: AsyncConnection[Any], *, candidate: AgentManifest, share: float, mode: str
) -> None:
    await conn.execute(
        SET_ROLLOUT,
        (candidate.name, Jsonb(candidate.model_dump(mode="json")), candidate.version, share, mode),
    )


async def get_rollout(conn: AsyncConnection[Any], agent: str) -> tuple[AgentManifest, float, str] | None:
    row = await (await conn.execute(GET_ROLLOUT, (agent,))).fetchone()
    if row is None:
        return None
    return AgentManifest.model_validate(row[0]), float(row[1]), str(row[2])


async def end_rollout(conn: AsyncConnection[Any], agent: str) -> bool:
    cursor = await conn.execute(END_ROLLOUT, (agent,))
    return cursor.rowcount > 0


MIRROR_RUN = """
INSERT INTO aios_runs (run_id, agent, manifest_version, mode, status, paired_with, task, state)
VALUES (%s, %s, %s, %s, %s, %s, %s, %s)
ON CONFLICT (run_id) DO UPDATE SET status = EXCLUDED.status, state = EXCLUDED.state,
    updated_at = now()
"""


async def mirror_run(
    conn: AsyncConnection[Any],
    state: RunState,
    *,
    task: dict[str, Any],
    paired_with: str | None,
) -> None:
    await conn.execute(
        MIRROR_RUN,
        (
            state.run_id,
            state.agent,
            state.manifest_version,
            state.mode,
            state.status.value,
            paired_with,
            Jsonb(task),
            Jsonb(state.model_dump(mode="json")),
        ),
    )


RUN_STATES = """
SELECT run_id, manifest_version, mode, paired_with, state FROM aios_runs
WHERE agent = %s ORDER BY started_at DESC LIMIT %s
"""


async def recent_runs(conn: AsyncConnection[Any], agent: str, limit: int = 200) -> list[dict[str, Any]]:
    cursor = await conn.execute(RUN_STATES, (agent, limit))
    columns = [column.name for column in cursor.description or []]
    return [dict(zip(columns, row, strict=True)) for row in await cursor.fetchall()]


SUBJECT_HISTORY = """
SELECT run_id, status, state, started_at FROM aios_runs
WHERE agent = %s AND (task->>'subject' = %s OR task->>'customer' = %s) AND run_id <> %s
ORDER BY started_at DESC LIMIT %s
"""


async def subject_history(
    conn: AsyncConnection[Any], *, agent: str, subject: str, exclude_run: str, limit: int
) -> list[dict[str, Any]]:
    """Earlier runs of this agent about the same subject (a task's `subject` or `customer`)."""
    cursor = await conn.execute(SUBJECT_HISTORY, (agent, subject, subject, exclude_run, limit))
    columns = [column.name for column in cursor.description or []]
    return [dict(zip(columns, row, strict=True)) for row in await cursor.fetchall()]


RUN_MIRROR = "SELECT task, state, updated_at FROM aios_runs WHERE run_id = %s"


async def run_mirror(conn: AsyncConnection[Any], run_id: str) -> tuple[dict[str, Any], RunState, Any] | None:
    """A run's task and its state as last mirrored (working memory), or None."""
    row = await (await conn.execute(RUN_MIRROR, (run_id,))).fetchone()
    if row is None:
        return None
    return row[0], RunState.model_validate(row[1]), row[2]
