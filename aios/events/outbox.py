"""The events outbox in Postgres (migration 0011): SQL as named constants, writes idempotent."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from psycopg import AsyncConnection
from psycopg.types.json import Jsonb

from aios.models.events import Delivery, Event
from aios.models.manifest import AgentManifest
from aios.models.triggers import EventTrigger

STORE_EVENT = """
INSERT INTO aios_events (event_id, topic, data, source) VALUES (%s, %s, %s, %s)
ON CONFLICT (event_id) DO NOTHING RETURNING received_at
"""
GET_EVENT = "SELECT event_id, topic, data, source, received_at FROM aios_events WHERE event_id = %s"
LIST_EVENTS = """
SELECT e.event_id, e.topic, e.source, e.received_at, count(d.agent), coalesce(string_agg(d.outcome, ','), '')
FROM aios_events e LEFT JOIN aios_event_deliveries d USING (event_id)
WHERE (%(topic)s::text IS NULL OR e.topic = %(topic)s)
GROUP BY e.event_id ORDER BY e.received_at DESC LIMIT %(limit)s
"""
ADD_DELIVERY = """
INSERT INTO aios_event_deliveries (event_id, agent, run_id) VALUES (%s, %s, %s)
ON CONFLICT (event_id, agent) DO NOTHING
"""
DELIVERIES = """
SELECT d.event_id, d.agent, d.run_id, d.outcome, d.detail, r.status
FROM aios_event_deliveries d LEFT JOIN aios_runs r ON r.run_id = d.run_id
WHERE d.event_id = %s ORDER BY d.agent
"""
PENDING = """
SELECT event_id, agent, run_id, outcome, detail, NULL FROM aios_event_deliveries
WHERE outcome = 'pending' AND created_at < now() - %s * interval '1 second'
ORDER BY created_at LIMIT %s
"""
SETTLE_DELIVERY = """
UPDATE aios_event_deliveries SET outcome = %s, detail = %s, updated_at = now()
WHERE event_id = %s AND agent = %s AND outcome = 'pending'
"""
SUBSCRIBERS = "SELECT agent, trigger, manifest FROM aios_subscriptions WHERE topic = %s ORDER BY agent"
SUBSCRIPTION = "SELECT trigger, manifest FROM aios_subscriptions WHERE agent = %s AND topic = %s"
OPEN_RUN_FOR_SUBJECT = """
SELECT run_id FROM aios_runs
WHERE agent = %(agent)s AND status NOT IN ('completed', 'compensated', 'needs_operator')
  AND (task->>'subject' = %(subject)s OR task->>'customer' = %(subject)s)
ORDER BY started_at DESC LIMIT 1
"""


def delivery_run_id(event_id: str, agent: str) -> str:
    """The one run an event can start for a subscriber: Temporal refuses the id a second time."""
    return f"{agent}-ev-{event_id}"


async def store(conn: AsyncConnection[Any], event: Event) -> datetime | None:
    """Keep the event; its arrival time, or None when its id was already kept."""
    row = await (
        await conn.execute(STORE_EVENT, (event.event_id, event.topic, Jsonb(event.data), event.source))
    ).fetchone()
    return row[0] if row else None


async def get_event(conn: AsyncConnection[Any], event_id: str) -> tuple[Event, datetime] | None:
    row = await (await conn.execute(GET_EVENT, (event_id,))).fetchone()
    if row is None:
        return None
    return Event(event_id=row[0], topic=row[1], data=row[2], source=row[3]), row[4]


async def list_events(conn: AsyncConnection[Any], *, topic: str | None, limit: int) -> list[tuple[Any, ...]]:
    return list(await (await conn.execute(LIST_EVENTS, {"topic": topic, "limit": limit})).fetchall())


async def add_delivery(conn: AsyncConnection[Any], event_id: str, agent: str) -> None:
    await conn.execute(ADD_DELIVERY, (event_id, agent, delivery_run_id(event_id, agent)))


async def deliveries(conn: AsyncConnection[Any], event_id: str) -> list[Delivery]:
    rows = await (await conn.execute(DELIVERIES, (event_id,))).fetchall()
    return [_delivery(row) for row in rows]


async def pending(conn: AsyncConnection[Any], *, older_than: float, limit: int = 100) -> list[Delivery]:
    rows = await (await conn.execute(PENDING, (older_than, limit))).fetchall()
    return [_delivery(row) for row in rows]


async def settle(conn: AsyncConnection[Any], delivery: Delivery, outcome: str, detail: str) -> None:
    await conn.execute(SETTLE_DELIVERY, (outcome, detail, delivery.event_id, delivery.agent))


async def subscribers(
    conn: AsyncConnection[Any], topic: str
) -> list[tuple[str, EventTrigger, AgentManifest]]:
    rows = await (await conn.execute(SUBSCRIBERS, (topic,))).fetchall()
    return [
        (agent, EventTrigger.model_validate(trigger), AgentManifest.model_validate_json(manifest))
        for agent, trigger, manifest in rows
    ]


async def subscription(
    conn: AsyncConnection[Any], agent: str, topic: str
) -> tuple[EventTrigger, AgentManifest] | None:
    row = await (await conn.execute(SUBSCRIPTION, (agent, topic))).fetchone()
    if row is None:
        return None
    return EventTrigger.model_validate(row[0]), AgentManifest.model_validate_json(row[1])


async def open_run_for(conn: AsyncConnection[Any], agent: str, subject: str) -> str | None:
    row = await (await conn.execute(OPEN_RUN_FOR_SUBJECT, {"agent": agent, "subject": subject})).fetchone()
    return str(row[0]) if row else None


def _delivery(row: tuple[Any, ...]) -> Delivery:
    return Delivery(
        event_id=row[0], agent=row[1], run_id=row[2], outcome=row[3], detail=row[4], run_status=row[5]
    )
