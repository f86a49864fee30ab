"""The operator's loop on the real stack: a worker that mails through a loopback SMTP server,
approvers alice and bob, and `aios approvals serve` on a free port (its links' base URL)."""

from __future__ import annotations

import asyncio
import contextlib
import re
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import httpx
import psycopg
import pytest
from psycopg_pool import AsyncConnectionPool
from temporalio.client import Client
from temporalio.service import RPCError

from aios.approvals.approvers import ApproverBook
from aios.approvals.links import Verdict, make_token
from aios.approvals.server import ApprovalServer
from aios.client import AiosClient
from aios.settings import Settings
from tests.support.ports import free_port
from tests.support.smtp_server import ReceivedMail, SmtpServer
from workers.main import run_worker

APPROVERS = {"alice": "alice@example.com", "bob": "bob@example.com"}
REFUSALS = "SELECT outcome, detail FROM aios_audit WHERE run_id = %s AND action = 'decision_link' ORDER BY id"
LINK = re.compile(r"(?P<verdict>Approve|Reject):\s+(?P<url>http://\S+/a/\S+)")


def loop_settings(base: Settings, smtp: SmtpServer, task_queue: str, approvals_port: int) -> Settings:
    return base.model_copy(
        update={
            "task_queue": task_queue,
            "smtp_host": smtp.host,
            "smtp_port": smtp.port,
            "smtp_from": "aios@example.com",
            "smtp_starttls": False,
            "approvals_port": approvals_port,
            "approvals_url": f"http://127.0.0.1:{approvals_port}",
        }
    )


@dataclass
class OperatorLoop:
    settings: Settings
    client: AiosClient
    smtp: SmtpServer
    pool: AsyncConnectionPool
    book: ApproverBook

    @property
    def base_url(self) -> str:
        return self.settings.resolved_approvals_url

    async def mails(self, count: int, *, within: float = 30, kind: str = "") -> list[ReceivedMail]:
        """Wait until `count` mails (whose subject holds `kind`) arrived; return them."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + within
        while True:
            found = [mail for mail in self.smtp.received if kind in str(mail.message["Subject"])]
            if len(found) >= count or loop.time() > deadline:
                return found
            await asyncio.sleep(0.05)

    async def secret(self, name: str) -> bytes:
        async with self.pool.connection() as conn:
            approver = await self.book.get(conn, name)
        assert approver is not None
        return approver.secret

    async def token(self, name: str, *, run_id: str, step: int, verdict: Verdict, expires: datetime) -> str:
        return make_token(
            await self.secret(name), run_id=run_id, step=step, verdict=verdict, approver=name, expires=expires
        )

    async def refusals(self, run_id: str) -> list[tuple[str, dict[str, Any]]]:
        """The approvals server's refusal rows for a run: (outcome, detail)."""
        async with self.pool.connection() as conn:
            cursor = await conn.execute(
                REFUSALS,
                (run_id,),
            )
            return [(str(outcome), dict(detail)) for outcome, detail in await cursor.fetchall()]


def links_in(mail: ReceivedMail) -> dict[str, str]:
    body = mail.message.get_payload(decode=True)
    assert isinstance(body, bytes)
    return {match["verdict"].lower(): match["url"] for match in LINK.finditer(body.decode())}


@pytest.fixture(name="operator_loop")
async def operator_loop_fixture(
    stack_settings: Settings, temporal_client: Client, task_queue: str, smtp_server: SmtpServer
) -> AsyncIterator[OperatorLoop]:
    settings = loop_settings(stack_settings, smtp_server, task_queue, free_port())
    book = ApproverBook.for_settings(settings)
    async with AsyncConnectionPool(
        settings.resolved_database_url, min_size=1, max_size=4, kwargs={"autocommit": True}, open=False
    ) as pool:
        async with pool.connection() as conn:
            for name, email in APPROVERS.items():
                await book.add(conn, name, email=email, webhook=None)
        client = AiosClient(temporal_client, settings)
        stop = asyncio.Event()
        worker = asyncio.create_task(run_worker(settings, stop=stop, task_queue=task_queue))
        server = asyncio.create_task(
            ApprovalServer(client, pool, book).serve(
                host="127.0.0.1", port=settings.approvals_port, stop=stop
            )
        )
        try:
            yield OperatorLoop(settings, client, smtp_server, pool, book)
        finally:
            await _terminate_open_runs(temporal_client, task_queue)
            stop.set()
            await worker
            await server
            async with pool.connection() as conn:
                await conn.execute("DELETE FROM aios_approvers WHERE name = ANY(%s)", (list(APPROVERS),))


async def _terminate_open_runs(client: Client, task_queue: str) -> None:
    query = f"TaskQueue = '{task_queue}' AND ExecutionStatus = 'Running'"
    async for execution in client.list_workflows(query):
        with contextlib.suppress(RPCError):  # it may have ended since it was listed
            await client.get_workflow_handle(execution.id).terminate("test finished")


async def follow(url: str, *, confirm: bool = False, note: str = "") -> httpx.Response:
    async with httpx.AsyncClient(timeout=30) as http:
        if confirm:
            return await http.post(url, data={"note": note})
        return await http.get(url)


async def effects_of(settings: Settings, run_id: str) -> list[tuple[str, str, str]]:
    """(effect key, connector, state) of the run's effects, oldest first."""
    async with await psycopg.AsyncConnection.connect(settings.resolved_database_url, autocommit=True) as conn:
        cursor = await conn.execute(
            "SELECT effect_key, connector, state FROM aios_effects WHERE run_id = %s ORDER BY created_at",
            (run_id,),
        )
        return [(str(k), str(c), str(s)) for k, c, s in await cursor.fetchall()]


async def pending_notice_sends(
    client: Client, run_id: str, kind: str = "approval_requested", ref: str = "step-2"
) -> list[Any]:
    """The notice's `notify.send` activity while it is pending (its Notify workflow's)."""
    try:
        description = await client.get_workflow_handle(f"notify-{run_id}/{kind}/{ref}").describe()
    except RPCError:  # not started yet
        return []
    pending = description.raw_description.pending_activities
    return [activity for activity in pending if activity.activity_type.name == "notify.send"]
