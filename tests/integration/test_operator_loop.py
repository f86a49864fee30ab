"""The operator's loop on the real stack: a waiting refund mails its approver once, with
signed approve/reject links; the link (GET shows, POST confirms) decides the run, verified;
a reused, forged, expired or other-step link is refused with a page and an audit row; the
SLA's reminder and escalation reach the right people; `policy.verified_over` refuses a typed
name (CLI update or Web UI signal) above the amount, and a link still counts.
"""

from __future__ import annotations

import asyncio
import json
import threading
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import ClassVar

import pytest

from aios.errors import DecisionRefused
from aios.models.manifest import AgentManifest, PolicySpec
from aios.models.run import RunStatus
from aios.notify.webhook import signature
from tests.support.effect_server import EffectServer
from tests.support.manifests import FAST_SLA, refund_like_manifest
from tests.support.operator_loop import (
    OperatorLoop,
    effects_of,
    follow,
    links_in,
    operator_loop_fixture,  # noqa: F401  (the fixture)
    pending_notice_sends,
)
from tests.support.runs import audit_story, wait_for_state, wait_for_status
from tests.support.smtp_server import smtp_server_fixture  # noqa: F401  (the fixture)

pytestmark = pytest.mark.integration

REFUND = {"customer": "c-loop", "amount": 250}


def with_policy(manifest: AgentManifest, **changes: object) -> AgentManifest:
    policy = PolicySpec.model_validate({**manifest.policy.model_dump(), **changes})
    return manifest.model_copy(update={"policy": policy})


async def start_waiting(loop: OperatorLoop, manifest: AgentManifest) -> str:
    started = await loop.client.start_run(manifest.name, REFUND, manifest=manifest)
    await wait_for_status(loop.client, started.run_id, RunStatus.WAITING_APPROVAL)
    return started.run_id


async def test_a_waiting_refund_mails_one_link_pair_and_the_approve_link_decides_it(
    operator_loop: OperatorLoop, effect_server: EffectServer
) -> None:
    loop = operator_loop
    run_id = await start_waiting(loop, refund_like_manifest(effect_server.url))
    mails = await loop.mails(1)
    assert len(mails) == 1, [m.message["Subject"] for m in mails]
    mail = mails[0]
    assert mail.recipients == ["alice@example.com"]
    assert "asks for your approval: payout (250)" in str(mail.message["Subject"])
    links = links_in(mail)
    assert set(links) == {"approve", "reject"} and links["approve"].startswith(loop.base_url)
    [notified] = [e for e in await effects_of(loop.settings, run_id) if "/notify/" in e[0]]
    assert notified == (f"{run_id}/notify/approval_requested/step-2/alice/email", "email", "succeeded")

    shown = await follow(links["approve"])
    assert shown.status_code == 200 and "Approve step 2" in shown.text and "payout" in shown.text
    state = await loop.client.state(run_id)
    assert state.status is RunStatus.WAITING_APPROVAL  # a GET decides nothing (mail scanners fetch links)

    confirmed = await follow(links["approve"], confirm=True, note="ok by link")
    assert confirmed.status_code == 200 and "approved step 2" in confirmed.text, confirmed.text
    final = await loop.client.result(run_id, within=30)
    assert final.status is RunStatus.COMPLETED
    [decision] = [row for row in await audit_story(loop.settings, run_id) if row.outcome == "approve"]
    assert decision.actor == "alice" and decision.detail["channel"] == "link" and decision.detail["verified"]
    await asyncio.sleep(0.3)
    assert len(loop.smtp.received) == 1  # one notice, one mail: nothing sent twice


async def test_reused_forged_expired_and_other_step_links_are_refused_and_audited(
    operator_loop: OperatorLoop, effect_server: EffectServer
) -> None:
    loop = operator_loop
    run_id = await start_waiting(loop, refund_like_manifest(effect_server.url))
    [mail] = await loop.mails(1)
    links = links_in(mail)
    later = datetime.now(UTC) + timedelta(hours=1)

    expired = await loop.token(
        "alice", run_id=run_id, step=2, verdict="approve", expires=datetime.now(UTC) - timedelta(seconds=1)
    )
    page = await follow(f"{loop.base_url}/a/{expired}", confirm=True)
    assert page.status_code == 410 and "expired" in page.text

    other_step = await loop.token("alice", run_id=run_id, step=7, verdict="approve", expires=later)
    page = await follow(f"{loop.base_url}/a/{other_step}", confirm=True)
    assert page.status_code == 409 and "this link is for step 7" in page.text and "step 2" in page.text

    body, signature = links["approve"].rsplit("/", 1)[1].split(".")
    reject_body = links["reject"].rsplit("/", 1)[1].split(".")[0]
    forged = f"{reject_body}.{signature}"  # the reject claim under the approve link's signature
    page = await follow(f"{loop.base_url}/a/{forged}", confirm=True)
    assert page.status_code == 403 and "signature is not valid" in page.text
    bob_signed = await loop.token("bob", run_id=run_id, step=2, verdict="approve", expires=later)
    as_alice = bob_signed.replace(bob_signed.split(".")[0], body)  # alice's claim, bob's signature
    page = await follow(f"{loop.base_url}/a/{as_alice}", confirm=True)
    assert page.status_code == 403

    assert (await loop.client.state(run_id)).status is RunStatus.WAITING_APPROVAL  # none decided anything
    assert (await follow(links["approve"], confirm=True)).status_code == 200
    await loop.client.result(run_id, within=30)
    reused = await follow(links["approve"], confirm=True)
    assert reused.status_code == 410 and "already used" in reused.text

    refusals = await loop.refusals(run_id)
    assert [outcome for outcome, _ in refusals] == [
        "refused:expired",
        "refused:wrong_step",
        "refused:forged",
        "refused:forged",
        "refused:used",
    ]
    assert all(detail["channel"] == "link" and detail["verified"] is False for _, detail in refusals)


async def test_reminder_and_escalation_reach_the_right_people_and_expiry_tells_everyone(
    operator_loop: OperatorLoop, effect_server: EffectServer
) -> None:
    loop = operator_loop
    manifest = refund_like_manifest(effect_server.url, sla=FAST_SLA)
    started = await loop.client.start_run(manifest.name, REFUND, manifest=manifest)
    final = await loop.client.result(started.run_id, within=60)
    assert final.status is RunStatus.COMPENSATED  # the SLA's default: reject
    expired = await loop.mails(2, kind="approval expired")
    by_kind = {
        kind: sorted(r for m in loop.smtp.received if kind in str(m.message["Subject"]) for r in m.recipients)
        for kind in ("asks for your approval", "reminder", "escalated to you", "approval expired")
    }
    assert by_kind == {
        "asks for your approval": ["alice@example.com"],
        "reminder": ["alice@example.com"],
        "escalated to you": ["bob@example.com"],
        "approval expired": ["alice@example.com", "bob@example.com"],
    }, by_kind
    assert len(expired) == 2 and not links_in(expired[0])  # an expired approval carries no links
    escalated = next(m for m in loop.smtp.received if "escalated" in str(m.message["Subject"]))
    assert set(links_in(escalated)) == {"approve", "reject"}


async def test_verified_over_refuses_a_typed_name_above_the_amount_and_a_link_still_counts(
    operator_loop: OperatorLoop, effect_server: EffectServer
) -> None:
    loop = operator_loop
    manifest = with_policy(refund_like_manifest(effect_server.url), verified_over=200)
    run_id = await start_waiting(loop, manifest)
    with pytest.raises(DecisionRefused, match=r"over policy\.verified_over 200"):
        await loop.client.decide(run_id, "approve", approver="alice", channel="cli")
    await loop.client.signal_decision(run_id, "approve", {"approver": "alice", "channel": "link"})
    state = await wait_for_state(loop.client, run_id, lambda s: len(s.refused_decisions) == 2)
    assert "verified_over" in state.refused_decisions[1].reason and state.status is RunStatus.WAITING_APPROVAL
    bogus = await loop.token(
        "bob", run_id=run_id, step=2, verdict="approve", expires=datetime.now(UTC) + timedelta(hours=1)
    )
    await loop.client.signal_decision(run_id, "approve", {"approver": "alice", "step": 2, "token": bogus})
    state = await wait_for_state(loop.client, run_id, lambda s: len(s.refused_decisions) == 3)
    assert "did not check out" in state.refused_decisions[2].reason
    refused_rows = [r for r in await audit_story(loop.settings, run_id) if r.outcome == "refused"]
    assert [(r.detail["channel"], r.detail["verified"]) for r in refused_rows] == [
        ("cli", False),
        ("web_ui_signal", False),  # a signal is the Web UI's, whatever channel it claims
        ("web_ui_signal", False),
    ]

    [mail] = await loop.mails(1)
    confirmed = await follow(links_in(mail)["approve"], confirm=True)
    assert confirmed.status_code == 200, confirmed.text
    assert (await loop.client.result(run_id, within=30)).status is RunStatus.COMPLETED


class Hook(BaseHTTPRequestHandler):
    """A chat tool's incoming webhook: keeps each POST's headers and body."""

    received: ClassVar[list[tuple[dict[str, str], bytes]]] = []

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers["Content-Length"]))
        Hook.received.append(({k.lower(): v for k, v in self.headers.items()}, body))
        self.send_response(200)
        self.end_headers()

    def log_message(self, format: str, *args: object) -> None:
        pass


async def test_a_webhook_gets_a_signed_json_notice_beside_the_mail(
    operator_loop: OperatorLoop, effect_server: EffectServer
) -> None:
    loop = operator_loop
    server = ThreadingHTTPServer(("127.0.0.1", 0), Hook)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    Hook.received.clear()
    try:
        url = f"http://127.0.0.1:{server.server_address[1]}/hook"
        async with loop.pool.connection() as conn:
            await loop.book.add(conn, "alice", email="alice@example.com", webhook=url)
        run_id = await start_waiting(loop, refund_like_manifest(effect_server.url))
        await loop.mails(1)
        for _ in range(300):
            if Hook.received:
                break
            await asyncio.sleep(0.05)
        [(headers, body)] = Hook.received
        expected = signature(await loop.secret("alice"), headers["x-aios-timestamp"], body)
        assert headers["x-aios-signature"] == expected
        assert headers["idempotency-key"] == f"{run_id}/notify/approval_requested/step-2/alice/webhook"
        notice = json.loads(body)
        assert notice["kind"] == "approval_requested" and notice["amount"] == 250
        assert notice["approve_url"].startswith(loop.base_url) and "payout" in notice["text"]
        channels = sorted(c for key, c, state in await effects_of(loop.settings, run_id) if "/notify/" in key)
        assert channels == ["email", "webhook"]
    finally:
        server.shutdown()


async def test_quiet_hours_hold_a_notice_until_they_end(
    operator_loop: OperatorLoop, effect_server: EffectServer
) -> None:
    loop = operator_loop
    now = datetime.now(UTC)
    window = f"{(now - timedelta(hours=1)):%H:00}-{(now + timedelta(hours=2)):%H:00}"
    async with loop.pool.connection() as conn:
        await loop.book.add(conn, "alice", email="alice@example.com", webhook=None, quiet_hours=window)
    run_id = await start_waiting(loop, refund_like_manifest(effect_server.url))
    for _ in range(300):
        pending = await pending_notice_sends(loop.client.temporal, run_id)
        if pending and pending[0].last_failure.application_failure_info.type:
            break
        await asyncio.sleep(0.05)
    held = pending[0].last_failure.application_failure_info  # the message itself is encrypted
    assert held.type == "NotificationHeld" and held.next_retry_delay.seconds > 60
    assert loop.smtp.received == [] and not [
        e for e in await effects_of(loop.settings, run_id) if "/notify/" in e[0]
    ]
