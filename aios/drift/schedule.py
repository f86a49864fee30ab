"""The daily drift check's Temporal Schedule (`aios-drift`), and running the check now.

The Schedule starts the DriftCheck workflow (workflows/drift.py) once a day at the chosen time;
`aios agents drift-schedule` sets it and `aios agents drift-unschedule` removes it. Like the
digest's, it lives on the server beside the agents' Schedules (the Web UI's Schedules page
shows it) and `aios agents apply` leaves it alone.
"""

from __future__ import annotations

import uuid
from datetime import time

from temporalio.client import Client, Schedule

from aios.models.drift import DRIFT_WORKFLOW, DriftCheckRequest, DriftReport, DriftWindows
from aios.triggers.daily import daily_schedule

DRIFT_SCHEDULE_ID = "aios-drift"


def drift_schedule(task_queue: str, at: time, timezone: str, windows: DriftWindows) -> Schedule:
    return daily_schedule(
        DRIFT_SCHEDULE_ID,
        DRIFT_WORKFLOW,
        DriftCheckRequest(windows=windows),
        task_queue=task_queue,
        at=at,
        timezone=timezone,
        note="daily drift check of every agent version (aios agents drift-schedule)",
    )


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
