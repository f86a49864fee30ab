"""The operator's loop: how fast the inbox answers, and how fast a decision travels.

- inbox latency: `AiosClient.inbox()` with ITEMS open items, p50/p95 of READS reads: RUNS
  real AgentRuns waiting for approval (started in batches, each mirrored in Postgres and
  listed by Temporal's visibility), the rest unknown effects planted in the ledger (starting
  a thousand runs at once on a two-core machine measures the worker's backlog instead);
- notification: from the moment a run starts waiting (its pending approval's `since`) to the
  loopback SMTP server accepting the approval mail, over NOTIFY_RUNS runs one after another;
- link click -> effect: from POSTing the mail's approve link (`aios approvals serve`, in this
  process) to the approved effect's HTTP request arriving at a loopback effect server.

Everything runs against the stack AIOS_* points at; the worker runs in this process.
"""

from __future__ import annotations

import asyncio
import os
import re
import time
import uuid
from dataclasses import dataclass, field
from email import message_from_bytes
from typing import Any

import httpx
import psycopg
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, Envelope, Session
from psycopg_pool import AsyncConnectionPool
from temporalio.client import Client

from aios.approvals.approvers import ApproverBook
from aios.approvals.server import ApprovalServer
from aios.client import AiosClient
from aios.models.manifest import ActionSpec, AgentManifest, BudgetSpec, PolicySpec, RiskClass
from aios.models.run import RunState, RunStatus
from aios.settings import Settings, load_settings
from bench.report import Section, summarize_ms
from tests.support.effect_server import EffectServer
from tests.support.manifests import http_action
from tests.support.ports import free_port
from workers.main import run_worker

ITEMS = int(os.environ.get("AIOS_BENCH_INBOX_ITEMS", "1000"))
RUNS = min(ITEMS, int(os.environ.get("AIOS_BENCH_INBOX_RUNS", "200")))
READS = 20
NOTIFY_RUNS = int(os.environ.get("AIOS_BENCH_NOTIFY_RUNS", "20"))
START_BATCH = 20
PLANT = """
INSERT INTO aios_effects (effect_key, run_id, action, connector, request_hash, state, error)
SELECT %(marker)s || '/' || i || '/step-1/charge', %(marker)s || '/' || i, 'charge', 'payments', 'h',
       'unknown', 'timed out'
FROM generate_series(1, %(count)s) AS i
"""
APPROVER = "bench-approver"
APPROVE = re.compile(r"Approve:\s+(http://\S+)")


@dataclass
class TimedMail:
    accepted_at: float  # time.time() when the server answered 250
    body: str


@dataclass
class TimedHandler:
    mails: list[TimedMail] = field(default_factory=list)

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        accepted = time.time()
        body = message_from_bytes(envelope.original_content or b"").get_payload(decode=True)
        text = body.decode("utf-8", "replace") if isinstance(body, bytes) else ""
        self.mails.append(TimedMail(accepted, text))
        return "250 Message accepted for delivery"


def waiting_manifest(name: str, approvers: list[str]) -> AgentManifest:
    """One high-risk no-op action: every run waits for approval at its first step."""
    return AgentManifest.model_validate(
        {
            "name": name,
            "actions": {"ship": ActionSpec(connector="noop", risk=RiskClass.HIGH)},
            "policy": PolicySpec(approvers=approvers),
            # Every run at once: none queued for a slot, none refused by the daily budget.
            "budget": BudgetSpec(max_concurrent_runs=ITEMS + 100, tokens_per_day=100_000_000),
        }
    )


def payout_manifest(base_url: str) -> AgentManifest:
    return AgentManifest.model_validate(
        {
            "name": f"bench-link-{uuid.uuid4().hex[:6]}",
            "actions": {"payout": http_action(base_url, "payout", RiskClass.HIGH)},
            "policy": PolicySpec(approvers=[APPROVER]),
        }
    )


async def wait_waiting(client: AiosClient, run_id: str, within: float = 120) -> RunState:
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        state = await client.state(run_id)
        if state.status is RunStatus.WAITING_APPROVAL and state.pending_approval is not None:
            return state
        await asyncio.sleep(0.05)
    raise RuntimeError(f"{run_id} never waited for approval")


async def inbox_latency(client: AiosClient, section: Section) -> tuple[list[str], str]:
    """RUNS real runs waiting for approval, the rest of ITEMS planted as unknown effects."""
    manifest = waiting_manifest(f"bench-inbox-{uuid.uuid4().hex[:6]}", ["bench-nobody"])
    run_ids: list[str] = []
    for offset in range(0, RUNS, START_BATCH):
        batch = await asyncio.gather(
            *(
                client.start_run(manifest.name, {"customer": f"c-{i}"}, manifest=manifest)
                for i in range(offset, min(RUNS, offset + START_BATCH))
            )
        )
        # One batch at a time: a two-core machine starting hundreds of runs at once measures
        # the worker's backlog, not the inbox.
        await asyncio.gather(*(wait_waiting(client, run.run_id, within=600) for run in batch))
        run_ids += [run.run_id for run in batch]
    marker = f"bench-inbox-{uuid.uuid4().hex[:6]}"
    async with await psycopg.AsyncConnection.connect(
        client.settings.resolved_database_url, autocommit=True
    ) as conn:
        await conn.execute(PLANT, {"marker": marker, "count": ITEMS - RUNS})
    items = await client.inbox()
    samples = []
    for _ in range(READS):
        began = time.perf_counter()
        items = await client.inbox()
        samples.append(time.perf_counter() - began)
    section.add(
        f"inbox latency, {len(items)} open items ({RUNS} waiting runs, {ITEMS - RUNS} unknown effects)",
        summarize_ms(samples),
    )
    return run_ids, marker


async def decision_round_trips(
    client: AiosClient, settings: Settings, mails: TimedHandler, effects: EffectServer, section: Section
) -> None:
    manifest = payout_manifest(effects.url)
    notified, clicked = [], []
    async with httpx.AsyncClient(timeout=60) as http:
        for index in range(NOTIFY_RUNS):
            run = await client.start_run(manifest.name, {"customer": f"c-{index}"}, manifest=manifest)
            state = await wait_waiting(client, run.run_id)
            assert state.pending_approval is not None
            mail = await _mail_for(mails, run.run_id)
            notified.append(mail.accepted_at - state.pending_approval.since.timestamp())
            link = APPROVE.search(mail.body)
            assert link is not None, mail.body
            key = f"{run.run_id}/step-1/payout"
            began = time.monotonic()
            answer = await http.post(link[1], data={"note": "bench"})
            assert answer.status_code == 200, answer.text
            arrived = await _arrival(effects, key)
            clicked.append(arrived - began)
            await client.result(run.run_id, within=60)
    section.add("approval mail accepted after the run starts waiting", summarize_ms(notified))
    section.add("link click (confirm) -> effect executed", summarize_ms(clicked))


async def _mail_for(mails: TimedHandler, run_id: str, within: float = 60) -> TimedMail:
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        found = next((mail for mail in mails.mails if run_id in mail.body), None)
        if found is not None:
            return found
        await asyncio.sleep(0.005)
    raise RuntimeError(f"no mail for {run_id}")


async def _arrival(effects: EffectServer, key: str, within: float = 60) -> float:
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        found = next((moment for moment, arrived in effects.arrivals if arrived == key), None)
        if found is not None:
            return found
        await asyncio.sleep(0.002)
    raise RuntimeError(f"effect {key} never arrived")


async def _terminate(temporal: Client, run_ids: list[str]) -> None:
    for offset in range(0, len(run_ids), START_BATCH):
        await asyncio.gather(
            *(
                temporal.get_workflow_handle(run_id).terminate("benchmark finished")
                for run_id in run_ids[offset : offset + START_BATCH]
            ),
            return_exceptions=True,
        )


async def measure() -> Section:
    base = load_settings()
    section = Section(
        "The operator's loop: inbox and decision latency",
        "python -m bench inbox_latency",
        notes=f"Inbox: {ITEMS} open items ({RUNS} AgentRuns waiting for approval, the rest unknown "
        f"effects in the ledger), read {READS} times. "
        f"Notification and link: {NOTIFY_RUNS} runs one after another, each mailed to a "
        "loopback SMTP server (aiosmtpd) and approved through its signed link on "
        "`aios approvals serve`; the worker and the link server run in the benchmark's process.",
    )
    mails = TimedHandler()
    smtp_port, approvals_port = free_port(), free_port()
    controller: Any = Controller(mails, hostname="127.0.0.1", port=smtp_port)
    controller.start()
    effects = EffectServer().start()
    queue = f"bench-inbox-{uuid.uuid4().hex[:8]}"
    settings = base.model_copy(
        update={
            "task_queue": queue,
            "smtp_host": "127.0.0.1",
            "smtp_port": smtp_port,
            "smtp_from": "aios@example.com",
            "smtp_starttls": False,
            "approvals_port": approvals_port,
            "approvals_url": f"http://127.0.0.1:{approvals_port}",
        }
    )
    stop = asyncio.Event()
    worker = asyncio.create_task(run_worker(settings, stop=stop, task_queue=queue))
    book = ApproverBook.for_settings(settings)
    run_ids: list[str] = []
    marker = "none"
    async with AsyncConnectionPool(
        settings.resolved_database_url, min_size=1, max_size=4, kwargs={"autocommit": True}, open=False
    ) as pool:
        async with pool.connection() as conn:
            await book.add(conn, APPROVER, email="bench@example.com", webhook=None)
        client = await AiosClient.connect(settings)
        server = asyncio.create_task(
            ApprovalServer(client, pool, book).serve(host="127.0.0.1", port=approvals_port, stop=stop)
        )
        try:
            await decision_round_trips(client, settings, mails, effects, section)
            run_ids, marker = await inbox_latency(client, section)
        finally:
            await _terminate(client.temporal, run_ids)
            stop.set()
            await worker
            await server
            async with await psycopg.AsyncConnection.connect(
                settings.resolved_database_url, autocommit=True
            ) as conn:
                await conn.execute("DELETE FROM aios_approvers WHERE name = %s", (APPROVER,))
                await conn.execute("DELETE FROM aios_effects WHERE run_id LIKE %s", (f"{marker}/%",))
            effects.stop()
            controller.stop()
    return section


if __name__ == "__main__":
    asyncio.run(measure())
