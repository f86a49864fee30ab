"""Emitting an event from a run: how agents choreograph.

An action with `connector: events` and params `{"topic": "refund.requested", "data": {...}}`
(or the data's fields beside `topic`) hands the event to a `publish` function the host injects
(the worker's event bus). The event id is derived from the effect's idempotency key, so the
ledger's exactly-once holds downstream too: a retry, or a worker that died after publishing,
publishes the same id, which the bus keeps once and dispatches once.
"""

from __future__ import annotations

import hashlib
from collections.abc import Awaitable, Callable
from typing import Any

from connectors.actions.base import EffectRequest
from connectors.errors import ClientError

# (event id, topic, data, source) -> what the bus did with it
Publish = Callable[[str, str, dict[str, Any], str], Awaitable[dict[str, Any]]]
LONGEST_READABLE_ID = 190


class EventsConnector:
    name = "events"

    def __init__(self, publish: Publish) -> None:
        self._publish = publish

    async def perform(self, request: EffectRequest) -> dict[str, Any]:
        params = dict(request.params)
        topic = params.pop("topic", None) or request.target
        if not isinstance(topic, str) or not topic:
            raise ClientError('an events action needs a topic: params {"topic": "<topic>", "data": {...}}')
        data = params.pop("data", None)
        if data is None:
            data = params
        if not isinstance(data, dict):
            raise ClientError(f"an event's data must be an object, not {type(data).__name__}")
        source = f"run:{request.idempotency_key.split('/', 1)[0]}"
        return await self._publish(emitted_event_id(request.idempotency_key), topic, data, source)


def emitted_event_id(idempotency_key: str) -> str:
    """`emit-<key>`, or its digest when the key is too long to be an event id."""
    readable = f"emit-{idempotency_key}"
    if len(readable) <= LONGEST_READABLE_ID:
        return readable
    return f"emit-{hashlib.sha256(idempotency_key.encode()).hexdigest()[:40]}"
