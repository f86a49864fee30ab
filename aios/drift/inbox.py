"""Drift alarms in the operator's inbox: a source of `aios/inbox/collect.py`'s EXTRA_SOURCES.

Each alarm of the last day is an item until the day has passed (the check records at most one
per agent, version and comparison a day); `aios agents drift NAME` shows the whole comparison.
"""

from __future__ import annotations

import shlex
from datetime import datetime
from typing import Any

from psycopg import AsyncConnection
from temporalio.client import Client

from aios.drift.check import ALARM, DRIFT_ACTION, DRIFT_RUN
from aios.models.inbox import InboxItem, InboxKind

LOOKBACK_HOURS = 24
RECENT_ALARMS = """
SELECT DISTINCT ON (detail->>'agent', detail->>'version', step)
       event_key, rationale, detail, recorded_at FROM aios_audit
WHERE run_id = %s AND action = %s AND outcome = %s AND recorded_at > now() - make_interval(hours => %s)
ORDER BY detail->>'agent', detail->>'version', step, id DESC
"""


async def drift_alarms(conn: AsyncConnection[Any], temporal: Client) -> list[InboxItem]:
    """One item per agent version (and canary comparison) that drifted in the last day."""
    cursor = await conn.execute(RECENT_ALARMS, (DRIFT_RUN, DRIFT_ACTION, ALARM, LOOKBACK_HOURS))
    rows = await cursor.fetchall()
    return [drift_item(str(rationale), detail, recorded_at) for _, rationale, detail, recorded_at in rows]


def drift_item(rationale: str, detail: dict[str, Any], recorded_at: datetime) -> InboxItem:
    """What moved, by how much, and the command that shows the whole comparison."""
    agent, version, against = str(detail["agent"]), str(detail["version"]), str(detail["against"])
    metrics = [str(row["metric"]) for row in detail.get("moved", [])]
    return InboxItem(
        kind=InboxKind.DRIFT_ALARM,
        key=f"drift:{agent}:{version}:{against}",
        since=recorded_at,
        title=f"{agent} {version} drifted from its {against}: {', '.join(metrics)}",
        agent=agent,
        context={**detail, "summary": rationale},
        suggested="read the comparison; if the change is not wanted, pause the agent or end its canary",
        command=f"aios agents drift {shlex.quote(agent)}",
        alternatives=[
            f"aios pause --agent {shlex.quote(agent)}",
            f"aios agents canary-end {shlex.quote(agent)}",
        ],
    )
