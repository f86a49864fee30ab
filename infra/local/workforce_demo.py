"""`make demo`, part 3: the workforce starts on its own (infra/local/demo.py calls `workforce`).

1. `aios agents apply`: the manifests' triggers become a Temporal Schedule (invoice-chaser) and
   event subscriptions (inbox-triage on mail, refund-desk on `refund.requested`);
2. a customer's mail arrives on the mail channel -> the inbox triage runs (cause: the mail's
   event) -> it emits `refund.requested` -> the refund desk runs and waits for approval;
3. the operator approves; the refund goes out;
4. the invoice chaser's schedule is fired now, as its weekday-morning time would.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Awaitable, Callable
from email.message import EmailMessage

import aiosmtplib
from aiosmtpd.smtp import SMTP

from aios.client import AiosClient
from aios.errors import RunNotFound
from aios.events.mail import MailChannel, mail_event
from aios.events.outbox import delivery_run_id
from aios.models.run import RunState, RunStatus
from connectors.actions.events import emitted_event_id

TRIAGE, REFUND_DESK, CHASER = "inbox-triage", "refund-desk", "invoice-chaser"
PATIENCE_SECONDS = 60.0


async def workforce(
    client: AiosClient, say: Callable[[str], None], approve: Callable[[str], Awaitable[None]], home_queue: str
) -> None:
    applied = await client.apply()
    say("3. `aios agents apply` made the manifests' triggers real:")
    for name in applied.created + applied.updated:
        say(f"   schedule {name}")
    for name in applied.subscribed:
        say(f"   subscription {name}")
    for view in await client.schedules():
        fires = ", ".join(f"{moment:%a %d %b %H:%M}Z" for moment in view.next_fires)
        say(f"   {view.name}: {view.spec}; next: {fires}")
    refund_run = await mail_to_refund_desk(client, say)
    await approve(refund_run)
    done = await client.result(refund_run, within=PATIENCE_SECONDS)
    say(f"   {REFUND_DESK}: {done.status.value} ({', '.join(step.action for step in done.steps)})")
    await chase_now(client, say)
    # The demo's worker goes away: the schedules' firings go to the queue `aios worker` polls.
    await AiosClient(client.temporal, client.settings.model_copy(update={"task_queue": home_queue})).apply()
    say(f"   The schedules now fire to task queue {home_queue!r}: run `aios worker` to serve them.")


async def mail_to_refund_desk(client: AiosClient, say: Callable[[str], None]) -> str:
    """A mail to the triage, followed to the refund desk's approval; the refund run's id."""
    domain = client.settings.mail_domain
    mail = EmailMessage()
    mail["From"], mail["To"] = "ann@example.com", f"{TRIAGE}@{domain}"
    mail["Subject"], mail["Message-ID"] = (
        "Refund for order A-1001, please",
        f"<demo-{uuid.uuid4().hex[:12]}@example.com>",
    )
    mail.set_content(
        "Hello,\n\nThe lamp arrived broken. Could you refund it?\n\n"
        "Customer: cus_demo_ann\nOrder: A-1001\nAmount: 18000\n\nThanks, Ann\n"
    )
    loop = asyncio.get_running_loop()
    channel = MailChannel(client.events_bus, domain)
    server = await loop.create_server(lambda: SMTP(channel), "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        say(f"   A customer writes to {mail['To']} (the mail channel, smtp://127.0.0.1:{port}).")
        await aiosmtplib.send(mail, hostname="127.0.0.1", port=port)
    finally:
        server.close()
    event_id = mail_event(mail, "ann@example.com", str(mail["To"]), b"").event_id
    triage_run = delivery_run_id(event_id, TRIAGE)
    say(f"   -> event {event_id} (mail.received) started {triage_run}")
    triage = await _until(client, triage_run, lambda state: state.ended)
    say(f"   {TRIAGE}: {triage.status.value}; steps: {', '.join(step.action for step in triage.steps)}")
    emitted = next(step for step in triage.steps if step.action == "request_refund")
    assert emitted.effect_key is not None
    refund_event = emitted_event_id(emitted.effect_key)
    refund_run = delivery_run_id(refund_event, REFUND_DESK)
    say(f"   -> it emitted {refund_event} (refund.requested), which started {refund_run}")
    waiting = await _until(client, refund_run, lambda state: state.status is RunStatus.WAITING_APPROVAL)
    pending = waiting.pending_approval
    assert pending is not None
    say(f"   {REFUND_DESK}: waiting for approval of {pending.action} ({pending.amount:g} cents)")
    say(f"   `aios events show {refund_event}` shows the chain.")
    return refund_run


async def chase_now(client: AiosClient, say: Callable[[str], None]) -> None:
    name = f"{CHASER}/weekday-mornings"
    say(f"4. `aios schedules trigger {name}`: the schedule fires now, through admission.")
    before = {run.run_id for run in await client.list_runs(agent=CHASER, limit=100)}
    await client.trigger_schedule(name)
    for _ in range(int(PATIENCE_SECONDS * 5)):
        new = [
            run.run_id for run in await client.list_runs(agent=CHASER, limit=100) if run.run_id not in before
        ]
        if new:
            final = await _until(client, new[0], lambda state: state.ended)
            say(f"   {new[0]}: {final.status.value}; steps: {', '.join(s.action for s in final.steps)}")
            return
        await asyncio.sleep(0.2)
    say("   the scheduled run did not appear in time: is a worker running?")


async def _until(client: AiosClient, run_id: str, done: Callable[[RunState], bool]) -> RunState:
    for _ in range(int(PATIENCE_SECONDS * 10)):
        try:
            state = await client.state(run_id)
        except RunNotFound:  # its trigger has not started it yet
            state = None
        if state is not None and done(state):
            return state
        await asyncio.sleep(0.1)
    raise TimeoutError(f"{run_id} did not get there within {PATIENCE_SECONDS:.0f} s")
