"""A worker SIGKILLed while an approval's mail is being sent does not send it twice.

The loopback SMTP server keeps the message, then stalls its reply: the worker dies not
knowing whether the mail went out. Its ledger row was marked in flight (`unknown`) just
before sending, so the retry on a fresh worker sends no second copy; the effect stays
unknown, for the operator to see in `aios effects` and the inbox.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import psycopg
import pytest
from temporalio.client import Client

from aios.approvals.approvers import ApproverBook
from aios.client import AiosClient
from aios.models.run import RunStatus
from aios.settings import Settings
from tests.faults.support import WorkerProcess
from tests.support.effect_server import EffectServer
from tests.support.manifests import refund_like_manifest
from tests.support.operator_loop import APPROVERS, effects_of, loop_settings, pending_notice_sends
from tests.support.ports import free_port
from tests.support.runs import wait_for_status
from tests.support.smtp_server import SmtpServer, smtp_server_fixture  # noqa: F401  (the fixture)

pytestmark = pytest.mark.integration


async def connect(settings: Settings) -> psycopg.AsyncConnection[Any]:
    return await psycopg.AsyncConnection.connect(settings.resolved_database_url, autocommit=True)


def worker_env(settings: Settings) -> dict[str, str]:
    return {
        "AIOS_SMTP_HOST": str(settings.smtp_host),
        "AIOS_SMTP_PORT": str(settings.smtp_port),
        "AIOS_SMTP_FROM": str(settings.smtp_from),
        "AIOS_SMTP_STARTTLS": "false",
        "AIOS_APPROVALS_URL": settings.resolved_approvals_url,
    }


async def wait_until(condition: Callable[[], bool], within: float = 30) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within
    while not condition():
        assert loop.time() < deadline, "the condition never held"
        await asyncio.sleep(0.05)


async def test_a_worker_killed_while_mailing_an_approval_does_not_mail_it_twice(
    stack_settings: Settings,
    temporal_client: Client,
    effect_server: EffectServer,
    smtp_server: SmtpServer,
    tmp_path: Path,
) -> None:
    queue = f"test-notify-kill-{uuid.uuid4().hex[:8]}"
    settings = loop_settings(stack_settings, smtp_server, queue, free_port())
    async with await connect(settings) as conn:
        for name, email in APPROVERS.items():
            await ApproverBook.for_settings(settings).add(conn, name, email=email, webhook=None)
    client = AiosClient(temporal_client, settings)
    smtp_server.stall(20)  # kept at once, answered only after the worker is dead
    first = WorkerProcess(queue, tmp_path / "worker.log", settings, env=worker_env(settings))
    second: WorkerProcess | None = None
    try:
        manifest = refund_like_manifest(effect_server.url)
        started = await client.start_run(
            manifest.name, {"customer": "c-kill", "amount": 250}, manifest=manifest
        )
        await wait_until(lambda: len(smtp_server.received) == 1)
        first.kill()
        second = WorkerProcess(queue, tmp_path / "worker.log", settings, env=worker_env(settings))
        await wait_for_status(client, started.run_id, RunStatus.WAITING_APPROVAL)
        for _ in range(600):  # the retry (after the 2 s heartbeat timeout) finds it in flight
            if not await pending_notice_sends(temporal_client, started.run_id):
                break
            await asyncio.sleep(0.1)
        else:
            raise AssertionError("the notice was never retried")
        key = f"{started.run_id}/notify/approval_requested/step-2/alice/email"
        assert (key, "email", "unknown") in await effects_of(settings, started.run_id)
        assert len(smtp_server.received) == 1 and len(set(smtp_server.message_ids())) == 1
        assert any(item.key == f"unknown_effect:{key}" for item in await client.inbox())

        await client.decide(started.run_id, "approve", approver="alice")
        assert (await client.result(started.run_id, within=60)).status is RunStatus.COMPLETED
        assert len(smtp_server.received) == 1
        async with await connect(settings) as conn:  # else it stays in every later inbox here
            await conn.execute("DELETE FROM aios_effects WHERE effect_key = %s", (key,))
    finally:
        first.stop()
        if second is not None:
            second.stop()
        async with await psycopg.AsyncConnection.connect(
            settings.resolved_database_url, autocommit=True
        ) as conn:
            await conn.execute("DELETE FROM aios_approvers WHERE name = ANY(%s)", (list(APPROVERS),))
