"""The daily drift check's Temporal Schedule (`aios-drift`), and running the check now.

The Schedule starts the DriftCheck workflow (workflows/drift.py) once a day at the chosen time;
`aios agents drift-schedule` sets it and `aios agents drift-unschedule` removes it. Like the
digest's, it lives on the server beside the agents' Schedules (the Web UI's Schedules page
shows it) and `aios agents apply` leaves it alone.
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

from aios.models.drift import DRIFT_WORKFLOW, DriftCheckRequest, DriftReport, DriftWindows

DRIFT_SCHEDULE_ID = "aios-drift"


def drift_schedule(task_queue: str, at: time, timezone: str, windows: DriftWindows) -> Schedule:
    daily = ScheduleCalendarSpec(hour=[ScheduleRange(at.hour)], minute=[ScheduleRange(at.minute)])
    action = ScheduleActionStartWorkflow(
        DRIFT_WORKFLOW,
        DriftCheckRequest(windows=windows),
        id=DRIFT_SCHEDULE_ID,  # Temporal appends the firing's time
        task_queue=task_queue,
        static_summary="daily drift check of every agent version",
    )
    return Schedule(
        action=action,
        spec=ScheduleSpec(calendars=[daily], time_zone_name=timezone),
        policy=SchedulePolicy(overlap=ScheduleOverlapPolicy.SKIP),
        state=ScheduleState(note="aios agents drift-schedule"),
    )


async def set_drift_schedule(client: Client, schedule: Schedule) -> bool:
    """Create the drift check's Schedule, or replace its action and time; True when created."""
    try:
        await client.create_schedule(DRIFT_SCHEDULE_ID, schedule, memo={"owner": "aios"})
        return True
    except ScheduleAlreadyRunningError:

        def replace(_: ScheduleUpdateInput) -> ScheduleUpdate:
            return ScheduleUpdate(schedule=schedule)

        await client.get_schedule_handle(DRIFT_SCHEDULE_ID).update(replace)
        return False


async def remove_drift_schedule(client: Client) -> bool:
    """Delete the drift check's Schedule; False when there was none."""
    try:
        await client.get_schedule_handle(DRIFT_SCHEDULE_ID).delete()
    except RPCError as error:
        if error.status != RPCStatusCode.NOT_FOUND:
            raise
        return False
    return True


async def check_drift_now(client: Client, task_queue: str, windows: DriftWindows) -> DriftReport:
    """Run the DriftCheck workflow now and wait for it (a rerun the same day records no new alarm)."""
    report: DriftReport = await client.execute_workflow(
        DRIFT_WORKFLOW,
        DriftCheckRequest(windows=windows),
        id=f"{DRIFT_SCHEDULE_ID}-now-{uuid.uuid4().hex[:10]}",
        task_queue=task_queue,
        result_type=DriftReport,
    )
    return report
