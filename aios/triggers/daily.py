"""Daily Temporal Schedules aios keeps for itself (the digest, the drift check): one workflow
started once a day at a time of day, skipped if the previous one still runs. Set by a CLI
command, replaced whole when set again, and apart from the agents' Schedules (their ids do not
start with `aios-schedule-`, so `aios agents apply` leaves them alone). They are set and removed with
schedules.put_schedule and drop_schedule.
"""

from __future__ import annotations

from datetime import time
from typing import Any

from temporalio.client import (
    Schedule,
    ScheduleActionStartWorkflow,
    ScheduleCalendarSpec,
    ScheduleOverlapPolicy,
    SchedulePolicy,
    ScheduleRange,
    ScheduleSpec,
    ScheduleState,
)


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
