"""Daily Temporal Schedules aios keeps for itself (the digest, the drift check): one workflow
started once a day at a time of day, skipped if the previous one still runs. Set by a CLI
command, replaced whole when set again, and apart from the agents' Schedules (their ids do not
start with `aios-schedule-`, so `aios agents apply` leaves them alone).
"""

from __future__ import annotations

from datetime import time
from typing import Any

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


def daily_schedule(
    identifier: str, workflow: str, arg: Any, *, task_queue: str, at: time, timezone: str, note: str
) -> Schedule:
    """`workflow(arg)` every day at `at` in `timezone`; each firing's id is `identifier-<time>`."""
    daily = ScheduleCalendarSpec(hour=[ScheduleRange(at.hour)], minute=[ScheduleRange(at.minute)])
    action = ScheduleActionStartWorkflow(
        workflow, arg, id=identifier, task_queue=task_queue, static_summary=note
    )
    return Schedule(
        action=action,
        spec=ScheduleSpec(calendars=[daily], time_zone_name=timezone),
        policy=SchedulePolicy(overlap=ScheduleOverlapPolicy.SKIP),
        state=ScheduleState(note=note),
    )


async def put_schedule(client: Client, identifier: str, schedule: Schedule) -> bool:
    """Create the Schedule, or replace its action and time; True when created."""
    try:
        await client.create_schedule(identifier, schedule, memo={"owner": "aios"})
        return True
    except ScheduleAlreadyRunningError:

        def replace(_: ScheduleUpdateInput) -> ScheduleUpdate:
            return ScheduleUpdate(schedule=schedule)

        await client.get_schedule_handle(identifier).update(replace)
        return False


async def drop_schedule(client: Client, identifier: str) -> bool:
    """Delete the Schedule; False when there was none."""
    try:
        await client.get_schedule_handle(identifier).delete()
    except RPCError as error:
        if error.status != RPCStatusCode.NOT_FOUND:
            raise
        return False
    return True
