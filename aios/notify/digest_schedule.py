"""The daily digest's Temporal Schedule (`aios-digest`), and sending one now.

The Schedule starts the Digest workflow (workflows/notifications.py) once a day at the chosen
time; it is set by `aios digest schedule` and lives on the server like the agents' Schedules
(it shows in the Web UI's Schedules page), apart from them: `aios agents apply` leaves it alone.
"""

from __future__ import annotations

import uuid
from datetime import time

from temporalio.client import Client, Schedule

from aios.models.notify import DigestRequest, NoticeOutcome
from aios.triggers.daily import daily_schedule

DIGEST_SCHEDULE_ID = "aios-digest"
DIGEST_WORKFLOW = "Digest"  # workflows/notifications.py DigestWorkflow


def digest_schedule(task_queue: str, at: time, timezone: str, recipients: list[str]) -> Schedule:
    return daily_schedule(
        DIGEST_SCHEDULE_ID,
        DIGEST_WORKFLOW,
        DigestRequest(recipients=recipients),
        task_queue=task_queue,
        at=at,
        timezone=timezone,
        note=f"daily digest to {', '.join(recipients)} (aios digest schedule)",
    )


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
