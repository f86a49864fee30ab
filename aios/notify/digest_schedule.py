"""The daily digest's Temporal Schedule (`aios-digest`), and sending one now.

The Schedule starts the Digest workflow (workflows/notifications.py) once a day at the chosen
time; it is set by `aios digest schedule` and lives on the server like the agents' Schedules
(it shows in the Web UI's Schedules page), apart from them: `aios agents apply` leaves it alone.
"""

from __future__ import annotations

import uuid
from datetime import time

from temporalio.client import (
    Client,
    Schedule,
    ScheduleActionStartWorkflow,
    ScheduleAlreadyRunningError,
    ScheduleCalendarSpec,
    ScheduleOverlapPolicy,
    SchedulePolicy,
    ScheduleRange,
    ScheduleSpec,
    ScheduleState,
    ScheduleUpdate,
    ScheduleUpdateInput,
)
from temporalio.service import RPCError, RPCStatusCode

from aios.models.notify import DigestRequest, NoticeOutcome

DIGEST_SCHEDULE_ID = "aios-digest"
DIGEST_WORKFLOW = "Digest"  # workflows/notifications.py DigestWorkflow


def digest_schedule(task_queue: str, at: time, timezone: str, recipients: list[str]) -> Schedule:
    daily = ScheduleCalendarSpec(hour=[ScheduleRange(at.hour)], minute=[ScheduleRange(at.minute)])
    action = ScheduleActionStartWorkflow(
        DIGEST_WORKFLOW,
        DigestRequest(recipients=recipients),
        id=DIGEST_SCHEDULE_ID,  # Temporal appends the firing's time
        task_queue=task_queue,
        static_summary=f"daily digest to {', '.join(recipients)}",
    )
    return Schedule(
        action=action,
        spec=ScheduleSpec(calendars=[daily], time_zone_name=timezone),
        policy=SchedulePolicy(overlap=ScheduleOverlapPolicy.SKIP),
        state=ScheduleState(note="aios digest schedule"),
    )


async def set_digest_schedule(client: Client, schedule: Schedule) -> bool:
    """Create the digest's Schedule, or replace its action and time; True when created."""
    try:
        await client.create_schedule(DIGEST_SCHEDULE_ID, schedule, memo={"owner": "aios"})
        return True
    except ScheduleAlreadyRunningError:

        def replace(_: ScheduleUpdateInput) -> ScheduleUpdate:
            return ScheduleUpdate(schedule=schedule)

        await client.get_schedule_handle(DIGEST_SCHEDULE_ID).update(replace)
        return False


async def remove_digest_schedule(client: Client) -> bool:
    """Delete the digest's Schedule; False when there was none."""
    try:
        await client.get_schedule_handle(DIGEST_SCHEDULE_ID).delete()
    except RPCError as error:
        if error.status != RPCStatusCode.NOT_FOUND:
            raise
        return False
    return True


async def send_digest_now(client: Client, task_queue: str, recipients: list[str]) -> NoticeOutcome:
    """Run the Digest workflow now and wait for its delivery (a second one the same day sends nothing)."""
    outcome: NoticeOutcome = await client.execute_workflow(
        DIGEST_WORKFLOW,
        DigestRequest(recipients=recipients),
        id=f"{DIGEST_SCHEDULE_ID}-now-{uuid.uuid4().hex[:10]}",
        task_queue=task_queue,
        result_type=NoticeOutcome,
    )
    return outcome
