"""`POST /events`: a signed event from another system (aios/events/signature.py).

The body: {"id": "<the sender's event id>", "topic": "refund.requested", "data": {...}}.
Answers 202 with each subscriber's delivery (a redelivery says `"new": false` and starts
nothing), 400 for a malformed body, 401 for a missing, wrong or stale signature, 409 for an id
already used by another event, 503 when the
event could not be kept (deliver it again). Every refusal is logged and kept in the audit trail
under the run id `events-inbound`, so an operator sees who knocked and why they were sent away.
"""

from __future__ import annotations

import json
import logging
import time
from typing import Any

import psycopg
from temporalio.service import RPCError

from aios.errors import EventIdReused, EventInvalid
from aios.events.bus import EventBus, new_event
from aios.events.signature import HEADER, SignatureRefused, verify
from aios.governance.admission import Connection
from aios.governance.audit import AuditEntry, append
from aios.models.events import Event
from aios.settings import Settings
from aios.web.server import HttpAnswer, HttpRequest, HttpServer

log = logging.getLogger("aios.events.http")
EVENTS_PATH = "/events"
REFUSALS_RUN = "events-inbound"


class EventServer(HttpServer):
    def __init__(self, bus: EventBus, settings: Settings, connection: Connection) -> None:
        super().__init__(self._route, max_body=settings.mail_max_bytes)
        self._bus = bus
        self._settings = settings
        self._db = connection

    async def _route(self, request: HttpRequest) -> HttpAnswer:
        if request.path != EVENTS_PATH:
            return HttpAnswer(404, {"error": f"no such endpoint {request.path!r}; POST /events"})
        if request.method != "POST":
            return HttpAnswer(405, {"error": f"{request.method} is not allowed; POST a signed JSON event"})
        try:
            event = self._accept(request)
        except SignatureRefused as refused:
            return await self._refuse(401, str(refused), request)
        except ValueError as malformed:
            return await self._refuse(400, str(malformed), request)
        return await self._publish(event, request)

    async def _publish(self, event: Event, request: HttpRequest) -> HttpAnswer:
        try:
            published = await self._bus.publish(event)
        except EventIdReused as reused:
            return await self._refuse(409, str(reused), request)
        except (psycopg.OperationalError, RPCError) as unavailable:
            log.error("event %s not kept: %s", event.event_id, unavailable)
            return HttpAnswer(503, {"error": "the event could not be kept; deliver it again later"})
        return HttpAnswer(202, published.model_dump(mode="json"))

    def _accept(self, request: HttpRequest) -> Event:
        """The event, if its signature holds; SignatureRefused or ValueError say why not."""
        secret = self._settings.events_secret
        if secret is None:
            raise SignatureRefused("this endpoint has no secret: set AIOS_EVENTS_SECRET")
        verify(
            secret.get_secret_value(),
            request.body,
            request.headers.get(HEADER),
            now=time.time(),
            tolerance=self._settings.events_tolerance_seconds,
        )
        return _parse(request.body)

    async def _refuse(self, status: int, reason: str, request: HttpRequest) -> HttpAnswer:
        log.warning("event refused (%d): %s", status, reason)
        entry = AuditEntry(
            event_key=f"{REFUSALS_RUN}:{time.time_ns()}",
            run_id=REFUSALS_RUN,
            step="inbound",
            actor="http",
            action="event",
            outcome="refused",
            rationale=reason,
            detail={"status": status, "bytes": len(request.body)},
        )
        try:
            async with self._db() as conn:
                await append(conn, [entry])
        except psycopg.OperationalError as unavailable:
            log.error("refusal not recorded: %s", unavailable)
        return HttpAnswer(status, {"error": reason})


def _parse(body: bytes) -> Event:
    try:
        fields: Any = json.loads(body)
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise ValueError(f"the body is not JSON: {error}") from None
    if not isinstance(fields, dict) or set(fields) - {"id", "topic", "data"}:
        raise ValueError('expected {"id": "<event id>", "topic": "<topic>", "data": {...}}')
    try:
        return new_event(fields.get("id"), fields.get("topic"), fields.get("data") or {}, "http")
    except EventInvalid as invalid:
        raise ValueError(str(invalid)) from None
