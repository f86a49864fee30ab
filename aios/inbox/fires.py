"""Schedule fires that started nothing: admission refused them (kill switch, budget, a paused
agent...) and wrote a `skipped` audit row (aios/governance/admission.py skipped_entry).

Each schedule shows its newest refused fire of the last day, until a later fire of the same
schedule starts a run: Temporal's visibility answers that by the run's `AiosCause`.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from psycopg import AsyncConnection
from temporalio.client import Client

from aios.governance.admission import AGENT_RUN
from aios.inbox.items import skipped_fire_item
from aios.models.inbox import InboxItem
from aios.temporal.search_attributes import CAUSE_KEY

LOOKBACK_HOURS = 24  # an older refusal has been followed by other fires, or is history
SKIPPED_FIRES = """
SELECT DISTINCT ON (actor) actor, run_id, rationale, detail->>'agent', recorded_at FROM aios_audit
WHERE outcome = 'skipped' AND step = 'admission' AND actor LIKE 'schedule:%%'
  AND recorded_at > now() - make_interval(hours => %s)
ORDER BY actor, id DESC
"""


async def skipped_schedule_fires(conn: AsyncConnection[Any], temporal: Client) -> list[InboxItem]:
    """One item per schedule whose newest fire in the last day was refused and not yet followed
    by a fire that started a run."""
    cursor = await conn.execute(SKIPPED_FIRES, (LOOKBACK_HOURS,))
    items: list[InboxItem] = []
    for actor, run_id, reason, agent, refused_at in await cursor.fetchall():
        if not await _started_since(temporal, str(actor), refused_at):
            items.append(skipped_fire_item(str(actor), str(run_id), str(agent), str(reason), refused_at))
    return items


async def _started_since(temporal: Client, cause: str, moment: datetime) -> bool:
    query = (
        f"WorkflowType = '{AGENT_RUN}' AND {CAUSE_KEY.name} = '{cause}' "
        f"AND StartTime > '{moment.isoformat()}'"
    )
    async for _ in temporal.list_workflows(query, limit=1):
        return True
    return False
