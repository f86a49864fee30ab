"""Subscriptions: the `triggers.event` entries of the manifests, as `aios agents apply` set them.

Kept in Postgres with the manifest as applied, so whichever process receives an event (the CLI,
the HTTP or mail endpoint, a worker whose run emits one) finds its subscribers without reading
an agents directory, and starts them with the manifest the operator applied, as Schedules do.
"""

from __future__ import annotations

from typing import Any

from psycopg import AsyncConnection
from psycopg.types.json import Jsonb

from aios.models.manifest import AgentManifest

UPSERT = """
INSERT INTO aios_subscriptions (agent, topic, trigger, manifest) VALUES (%s, %s, %s, %s)
ON CONFLICT (agent, topic) DO UPDATE SET trigger = EXCLUDED.trigger, manifest = EXCLUDED.manifest,
    applied_at = now()
"""
CURRENT = "SELECT agent, topic FROM aios_subscriptions"
DROP = "DELETE FROM aios_subscriptions WHERE agent = %s AND topic = %s"


async def apply_subscriptions(
    conn: AsyncConnection[Any], manifests: list[AgentManifest], *, every_agent: bool
) -> tuple[list[str], list[str]]:
    """Make the subscriptions match `manifests`; the `agent:topic`s set and the ones dropped.

    With `every_agent`, subscriptions of agents not in `manifests` are dropped too.
    """
    wanted = {
        (manifest.name, trigger.topic): (trigger, manifest)
        for manifest in manifests
        for trigger in manifest.triggers.event
    }
    agents = {manifest.name for manifest in manifests}
    async with conn.transaction():
        existing = {(row[0], row[1]) for row in await (await conn.execute(CURRENT)).fetchall()}
        for (agent, topic), (trigger, manifest) in wanted.items():
            await conn.execute(
                UPSERT,
                (
                    agent,
                    topic,
                    Jsonb(trigger.model_dump(mode="json")),
                    manifest.model_dump_json(),
                ),
            )
        dropped = sorted(key for key in existing - wanted.keys() if every_agent or key[0] in agents)
        for agent, topic in dropped:
            await conn.execute(DROP, (agent, topic))
    return [f"{agent}:{topic}" for agent, topic in sorted(wanted)], [
        f"{agent}:{topic}" for agent, topic in dropped
    ]
