"""Events on the real stack, through each door: `aios events send`, the client, the signed HTTP
endpoint, the mail channel, and a run that emits one.

Every subscriber starts at most one run per event id, whatever the number of deliveries or
senders; what started it is recorded (AiosCause `event:<id>`, the audit trail); the kill switch
applies to event-started runs; a subscriber whose run for the subject is still open gets what
its `on_busy` says.
"""

from __future__ import annotations

import asyncio
import json
import smtplib
import time
import uuid
from collections.abc import AsyncIterator
from email.message import EmailMessage
from typing import Any

import httpx
import pytest
from aiosmtpd.smtp import SMTP
from pydantic import SecretStr
from temporalio.client import Client

from aios.client import AiosClient
from aios.events.http import EventServer
from aios.events.mail import MAIL_TOPIC, MailChannel, mail_event
from aios.events.signature import sign
from aios.models.events import Published
from aios.models.manifest import ActionSpec, AgentManifest, PolicySpec, RiskClass
from aios.models.run import RunStatus
from aios.models.triggers import EventTrigger, TriggersSpec
from tests.support.cli import run_aios
from tests.support.effect_server import EffectServer
from tests.support.env import child_env
from tests.support.manifests import noop_manifest, refund_like_manifest, unique_agent
from tests.support.runs import audit_outcomes, audit_story, runs_caused_by, wait_for_state, wait_for_status

SECRET = "test-events-secret"


def new_topic() -> str:
    return f"t{uuid.uuid4().hex[:8]}.happened"


def subscriber(topic: str, *, on_busy: str = "signal", **trigger: Any) -> AgentManifest:
    triggers = TriggersSpec(event=[EventTrigger(topic=topic, **trigger)], on_busy=on_busy)
    return noop_manifest(1, triggers=triggers)


async def test_a_sent_event_starts_each_subscriber_once_whatever_the_deliveries(
    aios_client: AiosClient, temporal_client: Client
) -> None:
    topic = new_topic()
    manifest = subscriber(topic, task={"customer": "$.customer", "note": "from an event"})
    await aios_client.apply([manifest])
    env = child_env(aios_client.settings, COLUMNS="250", AIOS_TASK_QUEUE=aios_client.settings.task_queue)

    event_id = f"evt-{uuid.uuid4().hex[:8]}"
    sent = run_aios("events", "send", topic, "--id", event_id, "--data", '{"customer": "c-7"}', env=env)
    # The same id again, from four senders at once: the redelivery a webhook sender makes.
    again = await asyncio.gather(
        *(aios_client.send_event(topic, {"customer": "c-7"}, event_id=event_id) for _ in range(4))
    )

    assert sent.returncode == 0, sent.stderr
    assert event_id in sent.stdout and manifest.name in sent.stdout
    assert [published.new for published in again] == [False] * 4
    (run_id,) = await runs_caused_by(temporal_client, f"event:{event_id}")
    state = await wait_for_status(aios_client, run_id, RunStatus.COMPLETED)
    assert state.agent == manifest.name
    assert (await audit_outcomes(aios_client.settings, run_id))[0] == (
        f"event:{event_id}",
        "start",
        "started",
    )
    started = await temporal_client.get_workflow_handle(run_id).describe()
    assert started.status is not None
    await asyncio.sleep(1)  # a second run, were one started, would be listed by now
    assert await runs_caused_by(temporal_client, f"event:{event_id}") == [run_id]

    reused = run_aios("events", "send", "other.topic", "--id", event_id, env=env)
    assert reused.returncode == 2 and "already used for another event" in reused.stderr, reused.stderr
    shown = run_aios("events", "show", event_id, env=env)
    assert shown.returncode == 0, shown.stderr
    assert run_id in shown.stdout and "completed" in shown.stdout
    await aios_client.apply([manifest.model_copy(update={"triggers": TriggersSpec()})])


async def test_a_filter_chooses_the_events_and_the_mapping_builds_the_task(aios_client: AiosClient) -> None:
    topic = new_topic()
    manifest = subscriber(topic, task={"customer": "$.who.id", "kind": "$.kind"}, filter={"kind": "refund"})
    await aios_client.apply([manifest])

    ignored = await aios_client.send_event(topic, {"kind": "question", "who": {"id": "c-1"}})
    taken = await aios_client.send_event(topic, {"kind": "refund", "who": {"id": "c-2"}})

    assert ignored.deliveries == []
    (delivery,) = taken.deliveries
    state = await wait_for_status(aios_client, delivery.run_id, RunStatus.COMPLETED)
    story = await audit_story(aios_client.settings, state.run_id)
    assert story[0].actor == f"event:{taken.event.event_id}"
    await aios_client.apply([manifest.model_copy(update={"triggers": TriggersSpec()})])


async def test_a_paused_subscriber_s_event_is_skipped_and_recorded(
    aios_client: AiosClient, temporal_client: Client
) -> None:
    topic = new_topic()
    manifest = subscriber(topic)
    await aios_client.apply([manifest])
    await aios_client.pause_agent(manifest.name, by="test")

    published = await aios_client.send_event(topic, {"subject": "s-1"})

    (delivery,) = published.deliveries
    result = await temporal_client.get_workflow_handle(f"dispatch-{delivery.run_id}").result()
    assert result["outcome"] == "skipped" and "paused" in result["reason"], result
    outcomes = await audit_outcomes(aios_client.settings, delivery.run_id)
    assert outcomes == [(f"event:{published.event.event_id}", "start", "skipped")]
    await aios_client.apply([manifest.model_copy(update={"triggers": TriggersSpec()})])


# -- the signed HTTP endpoint --------------------------------------------------------------------


@pytest.fixture
async def event_server(aios_client: AiosClient) -> AsyncIterator[str]:
    settings = aios_client.settings.model_copy(update={"events_secret": SecretStr(SECRET)})
    server = EventServer(aios_client.events_bus, settings, aios_client.connection)
    stop = asyncio.Event()
    ready: asyncio.Future[tuple[str, int]] = asyncio.get_running_loop().create_future()
    serving = asyncio.create_task(
        server.serve(
            host="127.0.0.1", port=0, stop=stop, on_ready=lambda host, port: ready.set_result((host, port))
        )
    )
    host, port = await ready
    yield f"http://{host}:{port}/events"
    stop.set()
    await serving


def signed(body: bytes, *, secret: str = SECRET, at: float | None = None) -> dict[str, str]:
    return {"Aios-Signature": sign(secret, body, int(at if at is not None else time.time()))}


async def test_the_http_endpoint_takes_signed_events_and_refuses_the_rest(
    aios_client: AiosClient, temporal_client: Client, event_server: str
) -> None:
    topic = new_topic()
    manifest = subscriber(topic)
    await aios_client.apply([manifest])
    event_id = f"evt-{uuid.uuid4().hex[:8]}"
    body = json.dumps({"id": event_id, "topic": topic, "data": {"subject": "h-1"}}).encode()

    async with httpx.AsyncClient() as http:
        taken = await http.post(event_server, content=body, headers=signed(body))
        replayed = await http.post(event_server, content=body, headers=signed(body))
        forged = await http.post(event_server, content=body, headers=signed(body, secret="guess"))
        stale = await http.post(event_server, content=body, headers=signed(body, at=time.time() - 3600))
        unsigned = await http.post(event_server, content=body)
        malformed_body = b'{"id": "x", "topic": "Not A Topic"}'
        malformed = await http.post(event_server, content=malformed_body, headers=signed(malformed_body))

    assert taken.status_code == 202 and taken.json()["new"] is True, taken.text
    assert replayed.status_code == 202 and replayed.json()["new"] is False, replayed.text
    assert forged.status_code == 401 and "does not match" in forged.json()["error"]
    assert stale.status_code == 401 and "tolerance" in stale.json()["error"]
    assert unsigned.status_code == 401 and "no Aios-Signature" in unsigned.json()["error"]
    assert malformed.status_code == 400 and "topic" in malformed.json()["error"]
    (run_id,) = await runs_caused_by(temporal_client, f"event:{event_id}")
    await wait_for_status(aios_client, run_id, RunStatus.COMPLETED)
    refusals = [row.rationale for row in await audit_story(aios_client.settings, "events-inbound")]
    assert any("does not match" in reason for reason in refusals)
    assert any("tolerance" in reason for reason in refusals)
    await aios_client.apply([manifest.model_copy(update={"triggers": TriggersSpec()})])


# -- the mail channel ----------------------------------------------------------------------------


async def test_mail_to_an_agent_becomes_an_event_that_starts_it(
    aios_client: AiosClient, temporal_client: Client
) -> None:
    manifest = noop_manifest(1)
    triggers = TriggersSpec(
        event=[
            EventTrigger(
                topic=MAIL_TOPIC,
                filter={"to": manifest.name},
                task={"subject": "$.from", "about": "$.subject"},
            )
        ]
    )
    manifest = manifest.model_copy(update={"triggers": triggers})
    await aios_client.apply([manifest])
    channel = MailChannel(aios_client.events_bus, "aios.test")
    loop = asyncio.get_running_loop()
    server = await loop.create_server(lambda: SMTP(channel, data_size_limit=100_000), "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    mail = EmailMessage()
    mail["From"], mail["To"], mail["Subject"] = (
        "ann@example.com",
        f"{manifest.name}@aios.test",
        "refund please",
    )
    mail["Message-ID"] = f"<{uuid.uuid4().hex}@example.com>"
    mail.set_content("Order 42 arrived broken.")
    mail.add_attachment(b"%PDF-1.4 receipt", maintype="application", subtype="pdf", filename="receipt.pdf")

    def deliver() -> tuple[dict[str, Any], dict[str, Any]]:
        with smtplib.SMTP("127.0.0.1", port, timeout=10) as smtp:
            first = smtp.send_message(mail)
            again = smtp.send_message(mail)  # a relay retrying: the same Message-ID
            try:
                smtp.send_message(mail, to_addrs=["someone@elsewhere.test"])
                refused: dict[str, Any] = {}
            except smtplib.SMTPRecipientsRefused as error:
                refused = {key: value[0] for key, value in error.recipients.items()}
        return {"first": first, "again": again}, refused

    try:
        sent, refused = await asyncio.to_thread(deliver)
    finally:
        server.close()

    assert sent == {"first": {}, "again": {}}
    assert refused == {"someone@elsewhere.test": 550}
    event_id = mail_event(mail, "ann@example.com", f"{manifest.name}@aios.test", b"").event_id
    published = await aios_client.event(event_id)
    data = published.event.data
    assert (data["to"], data["subject"], data["body"].strip()) == (
        manifest.name,
        "refund please",
        "Order 42 arrived broken.",
    )
    assert data["attachments"] == [{"name": "receipt.pdf", "type": "application/pdf", "bytes": 16}]
    (run_id,) = await runs_caused_by(temporal_client, f"event:{event_id}")
    state = await wait_for_status(aios_client, run_id, RunStatus.COMPLETED)
    assert state.agent == manifest.name
    await aios_client.apply([manifest.model_copy(update={"triggers": TriggersSpec()})])


# -- choreography: a run emits, another agent starts -----------------------------------------------


async def test_an_emitted_event_starts_the_subscriber_once(
    aios_client: AiosClient, temporal_client: Client
) -> None:
    topic = new_topic()
    listener = subscriber(topic, task={"customer": "$.customer"})
    emitter = AgentManifest.model_validate(
        {
            "name": unique_agent("emit"),
            "actions": {
                "announce": ActionSpec(
                    connector="events", target=topic, risk=RiskClass.LOW, params=["customer"]
                )
            },
            "policy": PolicySpec(approvers=["operator"]),
            "turn_limit": 2,
        }
    )
    await aios_client.apply([listener, emitter])

    started = await aios_client.start_run(emitter.name, {"customer": "c-9"}, manifest=emitter)
    emitted = await wait_for_status(aios_client, started.run_id, RunStatus.COMPLETED)

    (step,) = emitted.steps
    event_id = f"emit-{started.run_id}/step-{step.step}/announce"
    (run_id,) = await runs_caused_by(temporal_client, f"event:{event_id}")
    state = await wait_for_status(aios_client, run_id, RunStatus.COMPLETED)
    assert state.agent == listener.name
    published = await aios_client.event(event_id)
    assert published.event.source == f"run:{started.run_id}" and published.event.data == {"customer": "c-9"}
    await aios_client.apply([listener.model_copy(update={"triggers": TriggersSpec()}), emitter])


# -- busy subjects ---------------------------------------------------------------------------------


async def waiting_run(
    aios_client: AiosClient, effects_url: str, topic: str, on_busy: str
) -> tuple[AgentManifest, str]:
    """A subscriber whose first event's run waits for approval: its subject is busy."""
    manifest = refund_like_manifest(effects_url, name=unique_agent("busy"))
    triggers = TriggersSpec(
        event=[EventTrigger(topic=topic, task={"customer": "$.customer", "amount": "$.amount"})],
        on_busy=on_busy,
    )
    manifest = manifest.model_copy(update={"triggers": triggers})
    await aios_client.apply([manifest])
    first = await aios_client.send_event(topic, {"customer": "c-busy", "amount": 250})
    (delivery,) = first.deliveries
    await wait_for_status(aios_client, delivery.run_id, RunStatus.WAITING_APPROVAL, within=60)
    return manifest, delivery.run_id


@pytest.mark.parametrize("on_busy", ["signal", "skip", "queue", "parallel"])
async def test_an_event_for_a_busy_subject_follows_on_busy(
    aios_client: AiosClient, effect_server: EffectServer, on_busy: str
) -> None:
    topic = new_topic()
    manifest, open_run = await waiting_run(aios_client, effect_server.url, topic, on_busy)

    second: Published = await aios_client.send_event(topic, {"customer": "c-busy", "amount": 40})

    (delivery,) = second.deliveries
    expected = {"signal": "signalled", "skip": "skipped", "queue": "queued", "parallel": "dispatched"}[
        on_busy
    ]
    assert delivery.outcome == expected, delivery
    if on_busy == "signal":
        state = await wait_for_state(aios_client, open_run, lambda state: bool(state.events_received))
        assert [event.event_id for event in state.events_received] == [second.event.event_id]
    elif on_busy == "skip":
        outcomes = await audit_outcomes(aios_client.settings, delivery.run_id)
        assert outcomes == [(f"event:{second.event.event_id}", "start", "skipped")]
    elif on_busy == "queue":
        # Not started while the open run waits; started once it has ended.
        await asyncio.sleep(1)
        assert (await aios_client.event(second.event.event_id)).deliveries[0].run_status is None
        await aios_client.decide(open_run, "reject", approver="alice")
        await wait_for_status(aios_client, delivery.run_id, RunStatus.COMPLETED, within=60)
    else:
        await wait_for_status(aios_client, delivery.run_id, RunStatus.COMPLETED, within=60)
    await aios_client.apply([manifest.model_copy(update={"triggers": TriggersSpec()})])


async def test_an_event_started_run_keeps_the_manifest_as_applied(aios_client: AiosClient) -> None:
    """Actions in an order JSONB would change (it sorts keys by length): the version holds."""
    topic = new_topic()
    manifest = noop_manifest(
        1,
        triggers=TriggersSpec(event=[EventTrigger(topic=topic)]),
        actions={
            "wrap_up_everything": ActionSpec(connector="noop", risk=RiskClass.LOW),
            "go": ActionSpec(connector="noop", risk=RiskClass.LOW),
        },
        turn_limit=3,
    )
    await aios_client.apply([manifest])

    (delivery,) = (await aios_client.send_event(topic, {"subject": "order"})).deliveries

    state = await wait_for_status(aios_client, delivery.run_id, RunStatus.COMPLETED)
    assert state.manifest_version == manifest.version
    assert [step.action for step in state.steps] == ["wrap_up_everything", "go"]
    await aios_client.apply([manifest.model_copy(update={"triggers": TriggersSpec()})])


async def test_a_canary_and_the_daily_budget_apply_to_event_started_runs(aios_client: AiosClient) -> None:
    topic = new_topic()
    manifest = subscriber(topic)
    candidate = manifest.model_copy(update={"description": "candidate"})
    await aios_client.apply([manifest])
    await aios_client.start_canary(candidate, share=1.0)

    (canaried,) = (await aios_client.send_event(topic, {"subject": "s-canary"})).deliveries
    state = await wait_for_status(aios_client, canaried.run_id, RunStatus.COMPLETED)
    assert state.manifest_version == candidate.version != manifest.version

    await aios_client.end_canary(manifest.name)
    broke = manifest.model_copy(update={"budget": manifest.budget.model_copy(update={"tokens_per_day": 1})})
    await aios_client.apply([broke])
    (refused,) = (await aios_client.send_event(topic, {"subject": "s-budget"})).deliveries
    result = await aios_client.temporal.get_workflow_handle(f"dispatch-{refused.run_id}").result()
    assert result["outcome"] == "skipped" and "daily budget" in result["reason"], result
    await aios_client.apply([manifest.model_copy(update={"triggers": TriggersSpec()})])


async def test_a_malformed_event_is_refused_in_one_line(aios_client: AiosClient) -> None:
    env = child_env(aios_client.settings, COLUMNS="250")
    for args, field in ((("Bad Topic",), "topic"), (("ok.topic", "--id", "bad id!"), "event_id")):
        refused = run_aios("events", "send", *args, env=env)
        assert refused.returncode == 2, refused.stderr
        assert refused.stderr.startswith(f"error: malformed event: {field}:"), refused.stderr
        assert len(refused.stderr.strip().splitlines()) == 1 and "Traceback" not in refused.stderr
