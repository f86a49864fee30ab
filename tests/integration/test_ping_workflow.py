"""The walking skeleton through every layer: client, Temporal, worker, activity, Postgres."""

import asyncio
import hashlib

from temporalio.client import Client

from activities.audit import AuditActivities
from activities.deps import close_deps, open_deps
from aios.client import AiosClient
from aios.models import AuditEvent
from aios.settings import Settings
from tests.support.runs import audit_story
from workers.main import run_worker


async def test_ping_writes_one_audit_row_through_a_real_worker(
    stack_settings: Settings, temporal_client: Client, task_queue: str
) -> None:
    stop = asyncio.Event()
    worker = asyncio.create_task(run_worker(stack_settings, stop=stop, task_queue=task_queue))
    try:
        aios = AiosClient(temporal_client, stack_settings)
        handle = await aios.start_ping("integration hello", actor="tester", task_queue=task_queue)
        result = await asyncio.wait_for(handle.result(), timeout=60)
    finally:
        stop.set()
        await worker

    assert result.workflow_id == handle.id
    story = await audit_story(stack_settings, handle.id)
    rows = [(row.id, row.actor, row.detail.get("message_sha256")) for row in story]
    assert rows == [(result.audit_id, "tester", hashlib.sha256(b"integration hello").hexdigest())]
    assert aios.run_url(handle.id).endswith(f"/namespaces/default/workflows/{handle.id}")


async def test_audit_activity_retried_records_the_row_once(stack_settings: Settings) -> None:
    deps = await open_deps(stack_settings)
    try:
        activities = AuditActivities(deps.pool)
        event = AuditEvent(
            event_key=f"retry-test-{id(deps)}-{asyncio.get_running_loop().time()}",
            run_id="retry-test",
            step="s1",
            actor="tester",
            action="noop",
            outcome="ok",
        )
        first = await activities.record(event)
        again = await activities.record(event)
    finally:
        await close_deps(deps)
    assert first.newly_recorded
    assert not again.newly_recorded
    assert again.audit_id == first.audit_id
