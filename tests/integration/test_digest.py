"""The daily digest on the real stack, through the CLI: `aios digest send` mails an approver
what waits for a person (each item with its settling command) and the day's work, once a day
however often it is sent; `aios digest schedule` makes the `aios-digest` Temporal Schedule,
whose firing runs the same workflow; a bad time is refused in one line."""

from __future__ import annotations

import asyncio
import subprocess
import uuid
from collections.abc import AsyncIterator
from email.message import Message

import pytest
from temporalio.client import Client

from aios.models.notify import NoticeOutcome
from aios.models.run import RunStatus
from aios.notify.digest_schedule import DIGEST_SCHEDULE_ID
from tests.support.cli import run_aios
from tests.support.effect_server import EffectServer
from tests.support.env import child_env
from tests.support.manifests import refund_like_manifest
from tests.support.operator_loop import OperatorLoop, operator_loop_fixture  # noqa: F401  (the fixture)
from tests.support.runs import wait_for_status
from tests.support.smtp_server import smtp_server_fixture  # noqa: F401  (the fixture)

pytestmark = pytest.mark.integration


async def aios(loop: OperatorLoop, *args: str) -> subprocess.CompletedProcess[str]:
    """The CLI in a thread: the worker answering it runs on this test's event loop."""
    return await asyncio.to_thread(
        run_aios, *args, env=child_env(loop.settings, COLUMNS="250", AIOS_TASK_QUEUE=loop.settings.task_queue)
    )


def text_of(message: Message) -> str:
    body = message.get_payload(decode=True)
    assert isinstance(body, bytes)
    return body.decode()


@pytest.fixture
async def reader(operator_loop: OperatorLoop) -> AsyncIterator[str]:
    """An approver of its own: the digest goes to each person once a day, and this test's
    person has had none today, whatever ran on this stack before."""
    name = f"reader-{uuid.uuid4().hex[:8]}"
    async with operator_loop.pool.connection() as conn:
        await operator_loop.book.add(conn, name, email=f"{name}@example.com", webhook=None)
    yield name
    async with operator_loop.pool.connection() as conn:
        await conn.execute("DELETE FROM aios_approvers WHERE name = %s", (name,))


async def test_the_digest_lists_what_waits_and_goes_once_a_day(
    operator_loop: OperatorLoop, reader: str, effect_server: EffectServer
) -> None:
    loop = operator_loop
    manifest = refund_like_manifest(effect_server.url)
    started = await loop.client.start_run(
        manifest.name, {"customer": "c-digest", "amount": 250}, manifest=manifest
    )
    await wait_for_status(loop.client, started.run_id, RunStatus.WAITING_APPROVAL)

    sent = await aios(loop, "digest", "send", "--to", reader, "--to", "nobody-here")
    assert sent.returncode == 0, sent.stderr
    assert "nobody-here: no such approver" in sent.stdout and "digest: 1 delivered" in sent.stdout
    [mail] = await loop.mails(1, kind="daily digest")
    assert mail.recipients == [f"{reader}@example.com"]
    body = text_of(mail.message)
    # Each open item with its settling command.
    assert f"- {manifest.name} asks to payout (250)" in body, body
    assert f"settle: aios approve {started.run_id} --step 2 --as alice" in body
    assert "runs: " in body and "waiting_approval" in body  # the day's work

    again = await aios(loop, "digest", "send", "--to", reader)
    assert again.returncode == 0 and "digest: 1 delivered" in again.stdout, again
    assert len(await loop.mails(2, kind="daily digest", within=1)) == 1  # once a day per person


async def test_the_digest_schedule_fires_the_same_workflow(
    operator_loop: OperatorLoop, reader: str, temporal_client: Client
) -> None:
    loop = operator_loop
    scheduled = await aios(
        loop, "digest", "schedule", "--to", reader, "--at", "07:30", "--timezone", "Europe/Paris"
    )
    assert scheduled.returncode == 0 and "every day at 07:30 Europe/Paris" in scheduled.stdout, scheduled
    try:
        handle = temporal_client.get_schedule_handle(DIGEST_SCHEDULE_ID)
        described = await handle.describe()
        [calendar] = described.schedule.spec.calendars
        assert (calendar.hour[0].start, calendar.minute[0].start) == (7, 30)
        assert described.schedule.spec.time_zone_name == "Europe/Paris"

        await handle.trigger()
        [mail] = await loop.mails(1, kind="daily digest")
        assert mail.recipients == [f"{reader}@example.com"]
        fired = [
            execution
            async for execution in temporal_client.list_workflows(
                f"WorkflowType = 'Digest' AND WorkflowId STARTS_WITH '{DIGEST_SCHEDULE_ID}-20'"
            )
        ]
        handle_of_fired = temporal_client.get_workflow_handle(fired[0].id, result_type=NoticeOutcome)
        outcome = await handle_of_fired.result()
        assert outcome.delivered == [
            f"digest/notify/digest/{outcome.delivered[0].split('/')[3]}/{reader}/email"
        ]
    finally:
        removed = await aios(loop, "digest", "unschedule")
    assert removed.returncode == 0 and "digest unscheduled" in removed.stdout, removed
    assert (await aios(loop, "digest", "unschedule")).stdout.strip() == "no digest was scheduled"


async def test_a_bad_time_or_zone_is_refused_in_one_line(operator_loop: OperatorLoop) -> None:
    bad_time = await aios(operator_loop, "digest", "schedule", "--to", "alice", "--at", "25:00")
    assert bad_time.returncode == 2 and "not a time of day; give HH:MM" in bad_time.stderr
    assert "Traceback" not in bad_time.stderr and len(bad_time.stderr.strip().splitlines()) == 1
    bad_zone = await aios(operator_loop, "digest", "schedule", "--to", "alice", "--timezone", "Mars/Olympus")
    assert bad_zone.returncode == 2 and "not a time zone" in bad_zone.stderr
