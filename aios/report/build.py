"""The report: the ledger's tallies, each valued by its agent's manifest."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from typing import Any

from psycopg import AsyncConnection

from aios.models.manifest import AgentManifest
from aios.models.report import ValueReport
from aios.report.figures import Tally, agent_value, total
from aios.report.ledger import tallies


async def value_report(
    conn: AsyncConnection[Any],
    *,
    since: datetime,
    minutes_per_touch: float,
    manifests: Iterable[AgentManifest],
    agent: str | None = None,
) -> ValueReport:
    """Every agent with live runs since `since` (or just `agent`, even without runs), valued by
    its manifest's `value:`; an agent without a manifest, or without `value:`, saves 0 minutes."""
    values = {manifest.name: manifest.value for manifest in manifests}
    counted = await tallies(conn, since=since, agent=agent)
    if agent is not None and not counted:
        counted = [Tally(agent=agent)]
    rows = [
        agent_value(tally, values.get(tally.agent), minutes_per_touch=minutes_per_touch) for tally in counted
    ]
    return ValueReport(
        since=since,
        minutes_per_touch=minutes_per_touch,
        agents=rows,
        total=total(rows, minutes_per_touch=minutes_per_touch),
    )
