"""`make demo`: the refund desk end to end on the local stack.

It starts what the refund desk talks to on loopback (Stripe's own stripe-mock for payments,
a local mail sink for email) and a worker on its own task queue, then runs two requests:

1. a refund over the approval threshold: the run waits, the operator approves it with the
   CLI (the Web UI's signal form would do the same), the refund and the reply go out;
2. a refund whose reply bounces: the run undoes the refund (a saga) and ends compensated;
3. the workforce on its own (workforce_demo.py): triggers applied, a mail -> inbox triage ->
   refund desk waiting for approval -> approved; the invoice chaser's schedule fired now.
4. the operator's loop: a refund waits, the operator's inbox shows it, alice receives the
   approval mail, and its signed approve link (on `aios approvals serve`) settles it.
"""

from __future__ import annotations

import asyncio
import logging
import os
import re
import shlex
import socket
import subprocess
import sys
from email import message_from_bytes
from pathlib import Path

import httpx
from mailsink import MailSink  # beside this script
from psycopg_pool import AsyncConnectionPool
from workforce_demo import workforce

from aios.approvals.approvers import ApproverBook
from aios.approvals.server import ApprovalServer
from aios.client import AiosClient
from aios.models.run import RunState, RunStatus
from aios.settings import Settings, load_settings
from workers.main import run_worker

ROOT = Path(__file__).resolve().parents[2]
STRIPE_MOCK = ROOT / ".aios" / "bin" / "stripe-mock"
DEMO_QUEUE = "aios-demo"
APPROVER = "alice"
REQUEST = {
    "customer": "cus_demo42",
    "order": "o-1001",
    "amount": 18000,  # cents: $180.00, over the $100.00 approval threshold
    "currency": "usd",
    "to": "ada@example.com",
    "subject": "Your refund for order o-1001",
    "message": "We have refunded $180.00 as store credit; it is on your account now.",
}


def say(text: str = "") -> None:
    print(text, flush=True)


def start_stripe_mock() -> tuple[subprocess.Popen[str], str]:
    if not STRIPE_MOCK.exists():
        raise SystemExit("stripe-mock is missing: run `make setup` (it builds it with Go)")
    process = subprocess.Popen(
        [str(STRIPE_MOCK), "-http-addr", "127.0.0.1:0", "-https-addr", "127.0.0.1:0"],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    assert process.stdout is not None
    for line in process.stdout:
        if "Listening for HTTP at address:" in line:
            return process, "http://" + line.rsplit(" ", 1)[1].strip()
    raise SystemExit("stripe-mock exited before it listened")


def steps_table(state: RunState) -> str:
    lines = [f"    {'#':>2}  {'action':<15} {'policy':<16} {'status':<12} decided by"]
    for step in state.steps:
        grade = step.grade.value
        lines.append(f"    {step.step:>2}  {step.action:<15} {grade:<16} {step.status:<12} {step.decided_by}")
    return "\n".join(lines)


async def wait_until_waiting(client: AiosClient, run_id: str) -> RunState:
    for _ in range(300):
        state = await client.state(run_id)
        if state.status is RunStatus.WAITING_APPROVAL:
            return state
        await asyncio.sleep(0.1)
    raise SystemExit(f"{run_id} never asked for approval")


async def approved_refund(client: AiosClient) -> None:
    started = await client.start_run("refund-desk", REQUEST)
    say(f"1. Started {started.run_id} (refund-desk, manifest {started.manifest_version}).")
    waiting = await wait_until_waiting(client, started.run_id)
    pending = waiting.pending_approval
    assert pending is not None
    say(f"   It recalled: {waiting.recalled or ['nothing yet: the first request of this customer']}")
    say(f"   It is WAITING for approval of step {pending.step}: {pending.action} of {pending.amount:g} cents")
    say(f"   (policy: over the threshold; approvers: {', '.join(pending.approvers)}).")
    say("   From the Web UI you would open the run and send the signal `approve` with")
    say(f'   {{"approver": "{APPROVER}", "note": "checked the order"}}. Here the CLI does it:')
    command = ["aios", "approve", started.run_id, "--as", APPROVER, "--note", "checked the order"]
    say(f"   $ {shlex.join(command)}")
    say("   " + (await aios_cli(*command[1:])).strip())
    final = await client.result(started.run_id)
    say(f"   Outcome: {final.status.value}. Steps:")
    say(steps_table(final))
    say(f"   See it in the Web UI: {client.run_url(started.run_id)}")


async def bounced_reply(client: AiosClient) -> None:
    request = {**REQUEST, "amount": 4500, "to": "nobody@bounce.invalid", "order": "o-1002"}
    started = await client.start_run("refund-desk", request)
    say(f"2. Started {started.run_id}: a $45.00 refund (no approval needed) to an address that bounces.")
    final = await client.result(started.run_id)
    say(f"   Outcome: {final.status.value}: {final.outcome}")
    say(steps_table(final))
    say(f"   See it in the Web UI: {client.run_url(started.run_id)}")


async def aios_cli(*args: str) -> str:
    """The CLI as the operator types it, asynchronously: the worker shares this event loop."""
    cli = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "aios.cli",
        *args,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    output, _ = await cli.communicate()
    return output.decode().rstrip()


def _find_mail(folder: Path, run_id: str) -> tuple[str, str] | None:
    for path in sorted(folder.glob("message-*.eml")):
        message = message_from_bytes(path.read_bytes())
        body = message.get_payload(decode=True)
        text = body.decode() if isinstance(body, bytes) else ""
        if run_id in text:
            return str(message["Subject"]), text
    return None


async def approval_mail(folder: Path, run_id: str) -> tuple[str, str]:
    """(subject, body) of the approval mail about this run, once the sink has it."""
    for _ in range(600):
        found = await asyncio.to_thread(_find_mail, folder, run_id)
        if found is not None:
            return found
        await asyncio.sleep(0.1)
    raise SystemExit(f"no approval mail about {run_id} arrived")


async def approved_by_link(client: AiosClient, settings: Settings, mail: Path) -> None:
    book = ApproverBook.for_settings(settings)
    async with AsyncConnectionPool(
        settings.resolved_database_url, min_size=1, max_size=2, kwargs={"autocommit": True}, open=False
    ) as pool:
        async with pool.connection() as conn:
            await book.add(conn, APPROVER, email="alice@shop.example", webhook=None)
        stop = asyncio.Event()
        server = asyncio.create_task(
            ApprovalServer(client, pool, book).serve(
                host="127.0.0.1", port=settings.approvals_port, stop=stop
            )
        )
        try:
            say(f"5. $ aios approvers add {APPROVER} --email alice@shop.example   (done)")
            started = await client.start_run("refund-desk", {**REQUEST, "order": "o-1003"})
            await wait_until_waiting(client, started.run_id)
            say(f"   Started {started.run_id}; it waits. The operator's inbox:")
            say("   $ aios inbox")
            say("\n".join("   " + line for line in (await aios_cli("inbox")).splitlines()))
            subject, body = await approval_mail(mail, started.run_id)
            link = re.search(r"Approve: (\S+)", body)
            assert link is not None
            say(f"   alice received: {subject!r}, with approve and reject links:")
            say(f"   {link[1][:90]}...")
            async with httpx.AsyncClient(timeout=30) as http:
                page = await http.post(link[1], data={"note": "approved from the mail"})
            heading = re.search(r"<h1[^>]*>([^<]*)</h1>", page.text)
            say(f"   Following it and pressing Approve: {heading[1] if heading else page.status_code}")
            final = await client.result(started.run_id)
            say(f"   Outcome: {final.status.value}; the audit trail records the channel (link), verified.")
        finally:
            stop.set()
            await server
            await book.remove_if_present(pool, APPROVER)


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


async def approve_as(client: AiosClient, run_id: str) -> None:
    say(f"   The operator approves: `aios approve {run_id} --as {APPROVER}`")
    await client.decide(run_id, "approve", approver=APPROVER)


async def main() -> None:
    # The bounce in part 2 is expected: keep the worker's failure tracebacks out of the story.
    logging.getLogger("temporalio").setLevel(logging.ERROR)
    home_queue = os.environ.get("AIOS_TASK_QUEUE", "aios")
    stripe, stripe_url = start_stripe_mock()
    sink = MailSink(ROOT / ".aios" / "mail").start()
    approvals_port = _free_port()
    os.environ.update(
        {
            "AIOS_STRIPE_BASE_URL": stripe_url,
            "AIOS_SMTP_HOST": "127.0.0.1",
            "AIOS_SMTP_PORT": str(sink.port),
            "AIOS_SMTP_FROM": "refunds@shop.example",
            "AIOS_SMTP_STARTTLS": "false",  # the loopback sink speaks plain SMTP
            "AIOS_TASK_QUEUE": DEMO_QUEUE,
            "AIOS_APPROVALS_PORT": str(approvals_port),
            "AIOS_APPROVALS_URL": f"http://127.0.0.1:{approvals_port}",
        }
    )
    settings = load_settings()
    stop = asyncio.Event()
    worker = asyncio.create_task(run_worker(settings, stop=stop))
    try:
        client = await AiosClient.connect(settings)
        say(f"Temporal Web UI: {settings.temporal_ui_url}")
        say(f"stripe-mock: {stripe_url}   mail sink: 127.0.0.1:{sink.port} (saves to .aios/mail/)")
        say()
        await approved_refund(client)
        say()
        await bounced_reply(client)
        say()
        await workforce(client, say, approve=lambda run_id: approve_as(client, run_id), home_queue=home_queue)
        say()
        await approved_by_link(client, settings, ROOT / ".aios" / "mail")
        say()
        say(f"Mail delivered to the sink: {sink.delivered} message(s); bounced: {sink.bounced}.")
        say("`aios runs --agent refund-desk` lists every run; `aios show RUN` shows one's state;")
        say("`aios audit RUN` tells its story from the audit trail; `aios trace RUN` prints its trace.")
    finally:
        stop.set()
        await worker
        sink.stop()
        stripe.terminate()
        stripe.wait(timeout=10)


if __name__ == "__main__":
    asyncio.run(main())
