"""What drift is measured on: per-run facts read from the run mirrors (aios_runs).

Only runs that have ended count (a run still going has not shown its whole mix), and only
live ones (a shadow run's steps are never executed, so its rates mean something else). The
facts are taken out of the mirrored `RunState` JSON by Postgres, so a day of runs crosses the
wire as a few numbers and short arrays each, not whole states.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from psycopg import AsyncConnection

from aios.models.manifest import Grade
from aios.models.run import RunStatus

ENDED = [RunStatus.COMPLETED.value, RunStatus.COMPENSATED.value, RunStatus.NEEDS_OPERATOR.value]
NO_ACTION = "(no action)"  # a run that proposed nothing: part of the mix too

RUN_FACTS = """
SELECT manifest_version, status, started_at,
       coalesce((state->>'tokens_spent')::bigint, 0),
       coalesce((state->>'cost_spent')::float8, 0),
       ARRAY(SELECT s->>'action' FROM jsonb_array_elements(state->'steps') s),
       ARRAY(SELECT s->>'grade' FROM jsonb_array_elements(state->'steps') s),
       ARRAY(SELECT s->>'status' FROM jsonb_array_elements(state->'steps') s),
       ARRAY(SELECT (p->'proposed'->>'confidence')::float8 FROM jsonb_array_elements(state->'proposals') p)
FROM aios_runs
WHERE agent = %s AND mode = 'live' AND status = ANY(%s) AND started_at >= %s AND started_at < %s
  AND coalesce(jsonb_typeof(state->'awaiting_operator'), 'null') = 'null'
"""
AGENTS_WITH_RUNS = "SELECT DISTINCT agent FROM aios_runs WHERE mode = 'live' AND started_at >= %s ORDER BY 1"
AGENT_KNOWN = "SELECT 1 FROM aios_runs WHERE agent = %s LIMIT 1"
LIVE_CANARY = "SELECT candidate_version FROM aios_rollouts WHERE agent = %s AND mode = 'live'"


@dataclass(frozen=True)
class RunFacts:
    """What one ended run says about its agent version's behaviour."""

    version: str
    started_at: datetime
    actions: tuple[str, ...]
    gated: int  # steps the policy sent to a person
    rejected: int  # of those, rejected (by a person or an expired SLA)
    confidences: tuple[float, ...]
    tokens: int
    cost: float
    compensated: bool


def facts_of(row: tuple[Any, ...]) -> RunFacts:
    version, status, started_at, tokens, cost, actions, grades, statuses, confidences = row
    gated = [status for grade, status in zip(grades, statuses, strict=True) if grade == Grade.NEEDS_APPROVAL]
    return RunFacts(
        version=str(version),
        started_at=started_at,
        actions=tuple(str(action) for action in actions),
        gated=len(gated),
        rejected=sum(1 for status in gated if status == "rejected"),
        confidences=tuple(float(value) for value in confidences if value is not None),
        tokens=int(tokens),
        cost=float(cost),
        compensated=status == RunStatus.COMPENSATED.value,
    )


async def run_facts(conn: AsyncConnection[Any], agent: str, start: datetime, end: datetime) -> list[RunFacts]:
    """The agent's ended live runs started in [start, end), every version."""
    cursor = await conn.execute(RUN_FACTS, (agent, ENDED, start, end))
    return [facts_of(row) for row in await cursor.fetchall()]


async def agents_with_runs(conn: AsyncConnection[Any], since: datetime) -> list[str]:
    cursor = await conn.execute(AGENTS_WITH_RUNS, (since,))
    return [str(row[0]) for row in await cursor.fetchall()]


async def agent_known(conn: AsyncConnection[Any], agent: str) -> bool:
    return await (await conn.execute(AGENT_KNOWN, (agent,))).fetchone() is not None


async def live_canary(conn: AsyncConnection[Any], agent: str) -> str | None:
    """The version of the agent's live canary rollout, if one is active."""
    row = await (await conn.execute(LIVE_CANARY, (agent,))).fetchone()
    return str(row[0]) if row else None
