"""The event bus: keep an event, then start (or tell) each subscriber, exactly once.

`publish` stores the event and, in the same transaction when it is new, one delivery row per
subscriber whose filter matches, each with the run id derived from (event id, agent). Then it
dispatches every delivery still pending: it starts `DispatchRun` (admission: budget, kill
switch, canary) with that run id. A second delivery of the event finds it kept and only
dispatches what is still pending; two senders racing start the same run id, which Temporal
refuses the second time. A sender that dies after storing leaves pending deliveries, which the
next delivery of the event or a worker's sweep (`dispatch_pending`) dispatches.

A subscriber whose run for the event's subject is still open ("double texting") gets what its
manifest's `triggers.on_busy` says: `signal` (the default) hands the event to the open run,
which sees it on its next turn; `queue` starts the new run once the open one has ended; `skip`
records the event as skipped; `parallel` starts a run beside it.
"""

from __future__ import annotations

import contextlib
import logging
from datetime import datetime
from typing import Any

from pydantic import ValidationError
from temporalio.client import Client
from temporalio.common import WorkflowIDReusePolicy
from temporalio.exceptions import WorkflowAlreadyStartedError
from temporalio.service import RPCError, RPCStatusCode

from aios.errors import EventIdReused, EventInvalid
from aios.events import outbox
from aios.governance.admission import Connection, skipped_entry
from aios.governance.audit import append
from aios.models.events import Delivery, Event, Published, RunEvent
from aios.models.manifest import AgentManifest
from aios.models.run import Cause, CauseKind
from aios.models.start import StartRequest
from aios.models.triggers import EventTrigger
from aios.settings import Settings

log = logging.getLogger("aios.events")

DISPATCH_WORKFLOW = "DispatchRun"
RUN_EVENT_SIGNAL = "event"  # workflows/operator_interface.py receives it


def new_event(event_id: Any, topic: Any, data: Any, source: str) -> Event:
    """An event from what a sender gave; EventInvalid names each malformed field, in one line."""
    try:
        return Event(event_id=event_id, topic=topic, data=data, source=source)
    except ValidationError as error:
        problems = "; ".join(
            f"{'.'.join(map(str, issue['loc']))}: {issue['msg']}" for issue in error.errors()
        )
        raise EventInvalid(
            f"malformed event: {problems} (a topic is lowercase, like refund.requested; an id is letters, "
            "digits and _.:@<>=+/-, at most 200)"
        ) from None


class EventBus:
    def __init__(self, temporal: Client, settings: Settings, connection: Connection) -> None:
        self.temporal = temporal
        self.settings = settings
        self._connection = connection

    async def publish(self, event: Event) -> Published:
        """Keep `event` and dispatch its deliveries; a redelivery dispatches only what is pending."""
        async with self._connection() as conn:
            async with conn.transaction():
                received_at = await outbox.store(conn, event)
                if received_at is not None:
                    for agent, trigger, _manifest in await outbox.subscribers(conn, event.topic):
                        if trigger.matches(event.data):
                            await outbox.add_delivery(conn, event.event_id, agent)
            if received_at is None:
                stored, stored_at = await self._kept(conn, event)
            else:
                stored, stored_at = event, received_at
            for delivery in await outbox.deliveries(conn, event.event_id):
                if delivery.outcome == "pending":
                    await self._dispatch(conn, stored, delivery)
            return Published(
                event=stored,
                new=received_at is not None,
                deliveries=await outbox.deliveries(conn, event.event_id),
                received_at=stored_at,
            )

    @staticmethod
    async def _kept(conn: Any, event: Event) -> tuple[Event, datetime]:
        """The event as first kept under `event`'s id; EventIdReused if that was another event."""
        kept = await outbox.get_event(conn, event.event_id)
        assert kept is not None  # its id is taken: it is kept
        stored, stored_at = kept
        if (stored.topic, stored.data) != (event.topic, event.data):
            raise EventIdReused(
                f"event id {event.event_id!r} was already used for another event ({stored.topic}, "
                f"received {stored_at:%Y-%m-%d %H:%M:%S}); give each event its own id"
            )
        return stored, stored_at

    async def dispatch_pending(self, *, older_than: float = 5.0) -> int:
        """Dispatch deliveries their sender left pending (it died in between); how many."""
        async with self._connection() as conn:
            left = await outbox.pending(conn, older_than=older_than)
            for delivery in left:
                kept = await outbox.get_event(conn, delivery.event_id)
                if kept is not None:
                    await self._dispatch(conn, kept[0], delivery)
        return len(left)

    async def _dispatch(self, conn: Any, event: Event, delivery: Delivery) -> None:
        found = await outbox.subscription(conn, delivery.agent, event.topic)
        if found is None:
            await outbox.settle(conn, delivery, "skipped", "the agent no longer subscribes to the topic")
            return
        trigger, manifest = found
        task = trigger.task_for(event.data)
        subject = task.get("subject") or task.get("customer")
        policy = manifest.triggers.on_busy
        busy = None
        if subject is not None and policy != "parallel":
            busy = await outbox.open_run_for(conn, delivery.agent, str(subject))
        if busy is not None and policy == "skip":
            await self._record_skip(conn, event, delivery, f"run {busy} is open for subject {subject}")
            await outbox.settle(conn, delivery, "skipped", f"busy: run {busy} is open for {subject}")
            return
        if busy is not None and policy == "signal" and await self._tell(busy, event):
            await outbox.settle(conn, delivery, "signalled", f"delivered to open run {busy}")
            return
        after = busy if policy == "queue" else None
        await self._start(event, delivery, manifest, trigger, after=after)
        outcome, detail = ("queued", f"starts after run {after} ends") if after else ("dispatched", "")
        await outbox.settle(conn, delivery, outcome, detail)

    async def _start(
        self,
        event: Event,
        delivery: Delivery,
        manifest: AgentManifest,
        trigger: EventTrigger,
        *,
        after: str | None,
    ) -> None:
        request = StartRequest(
            agent=delivery.agent,
            task=trigger.task_for(event.data),
            cause=Cause(kind=CauseKind.EVENT, ref=event.event_id),
            run_id=delivery.run_id,
            manifest=manifest,
            after=after,
        )
        # Another sender may have dispatched it first: one run all the same.
        with contextlib.suppress(WorkflowAlreadyStartedError):
            await self.temporal.start_workflow(
                DISPATCH_WORKFLOW,
                request,
                id=f"dispatch-{delivery.run_id}",
                task_queue=self.settings.task_queue,
                static_summary=f"{delivery.agent}: event {event.topic} {event.event_id}"[:200],
                id_reuse_policy=WorkflowIDReusePolicy.REJECT_DUPLICATE,
            )

    async def _tell(self, run_id: str, event: Event) -> bool:
        """Signal the open run; False when it has ended meanwhile (then a run is started)."""
        told = RunEvent(event_id=event.event_id, topic=event.topic, data=event.data)
        try:
            await self.temporal.get_workflow_handle(run_id).signal(RUN_EVENT_SIGNAL, told)
        except RPCError as error:
            if error.status == RPCStatusCode.NOT_FOUND:
                return False
            raise
        return True

    async def _record_skip(self, conn: Any, event: Event, delivery: Delivery, reason: str) -> None:
        cause = Cause(kind=CauseKind.EVENT, ref=event.event_id)
        await append(conn, [skipped_entry(delivery.run_id, delivery.agent, cause, reason, topic=event.topic)])
