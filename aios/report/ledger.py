"""Counting from Postgres: each agent's live runs (aios_runs) and a person's touches (aios_audit).

The window is on the run: a run started since `since` is counted with every touch it got,
even one given later. Shadow runs change nothing in the world, so only live runs count.
"""

from __future__ import annotations

from collections import defaultdict
from datetime import datetime
from typing import Any

from psycopg import AsyncConnection
from psycopg.rows import dict_row

from aios.report.figures import Tally

# Who decides without a person: the policy, a shadow run, an approval SLA's default
# (workflows/approval_gate.EXPIRED_BY). A verdict by anyone else is a person's.
AUTOMATIC_ACTORS = ("policy", "shadow", "policy:sla-expired")

LIVE_RUNS = """
SELECT run_id, agent, status, state FROM aios_runs
WHERE mode = 'live' AND started_at >= %(since)s AND (%(agent)s::text IS NULL OR agent = %(agent)s)
"""

RUN_TOTALS = f"""
WITH runs AS ({LIVE_RUNS})
SELECT agent,
       count(*) AS runs,
       count(*) FILTER (WHERE status = 'completed') AS completed,
       count(*) FILTER (WHERE status = 'compensated') AS compensated,
       coalesce(sum((state->>'tokens_spent')::bigint), 0) AS tokens,
       coalesce(sum((state->>'cost_spent')::numeric), 0) AS cost,
       coalesce(sum((state->'cache_saved'->>'tokens')::bigint), 0) AS cache_tokens_saved,
       coalesce(sum((state->'cache_saved'->>'cost')::numeric), 0) AS cache_cost_saved
FROM runs GROUP BY agent
"""

# Per action, the steps completed runs executed (an action's own minutes count for these).
EXECUTED_STEPS = f"""
WITH runs AS ({LIVE_RUNS})
SELECT runs.agent, step->>'action' AS action, count(*) AS executed
FROM runs CROSS JOIN LATERAL jsonb_array_elements(runs.state->'steps') AS step
WHERE runs.status = 'completed' AND step->>'status' = 'executed'
GROUP BY runs.agent, step->>'action'
"""

# A person's touches, as the audit trail records them: a verdict at an approval gate (the
# gate's row, not the step row after it), a resume (a day-cap override is a resume's detail),
# and an effect settled by `aios effects resolve` (the ledger's row; the run's own "told:"
# row of the same resolution is not counted twice).
TOUCHES = f"""
WITH runs AS ({LIVE_RUNS})
SELECT runs.agent,
       count(*) FILTER (WHERE a.step LIKE 'step-%%' AND a.outcome IN ('approve', 'reject')
                        AND NOT a.actor = ANY(%(automatic)s)) AS approvals,
       count(*) FILTER (WHERE a.step = 'control' AND a.action = 'resume') AS resumes,
       count(*) FILTER (WHERE a.step = 'effect' AND a.action = 'resolve_effect'
                        AND a.outcome IN ('applied', 'not_applied')) AS resolutions
FROM runs JOIN aios_audit a ON a.run_id = runs.run_id
GROUP BY runs.agent
"""


async def tallies(conn: AsyncConnection[Any], *, since: datetime, agent: str | None = None) -> list[Tally]:
    """One tally per agent with live runs started since `since` (only `agent`'s if given), by name."""
    params: dict[str, Any] = {"since": since, "agent": agent, "automatic": list(AUTOMATIC_ACTORS)}
    totals = await _rows(conn, RUN_TOTALS, params)
    executed: dict[str, dict[str, int]] = defaultdict(dict)
    for row in await _rows(conn, EXECUTED_STEPS, params):
        executed[row["agent"]][row["action"]] = int(row["executed"])
    touches = {row["agent"]: row for row in await _rows(conn, TOUCHES, params)}
    return [
        _tally(row, executed.get(row["agent"], {}), touches.get(row["agent"]))
        for row in sorted(totals, key=lambda row: str(row["agent"]))
    ]


def _tally(totals: dict[str, Any], executed: dict[str, int], touches: dict[str, Any] | None) -> Tally:
    return Tally(
        agent=str(totals["agent"]),
        runs=int(totals["runs"]),
        completed=int(totals["completed"]),
        compensated=int(totals["compensated"]),
        tokens=int(totals["tokens"]),
        cost=float(totals["cost"]),
        cache_tokens_saved=int(totals["cache_tokens_saved"]),
        cache_cost_saved=float(totals["cache_cost_saved"]),
        executed=executed,
        approvals=int(touches["approvals"]) if touches else 0,
        resumes=int(touches["resumes"]) if touches else 0,
        resolutions=int(touches["resolutions"]) if touches else 0,
    )


async def _rows(conn: AsyncConnection[Any], query: str, params: dict[str, Any]) -> list[dict[str, Any]]:
    async with conn.cursor(row_factory=dict_row) as cursor:
        await cursor.execute(query, params)
        return await cursor.fetchall()
