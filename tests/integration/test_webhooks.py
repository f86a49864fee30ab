"""Webhook events reach a waiting reconciler once per event id; a missing one is caught by polling.

Real Temporal dev server and Postgres; `aios webhook send` runs as its own process, and the
HTTP endpoint listens on loopback in this test. The effects are made `unknown` in the ledger
directly (as a timed-out call leaves them), or through a real timed-out call.
"""

from __future__ import annotations

import asyncio
import json
import sys
import uuid
from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
import psycopg
import pytest
from temporalio.client import Client, WorkflowHandle

from activities.reconcile import ReconcileInput, ReconcileProgress, ReconcileResult
from aios.client import AiosClient
from aios.ledger import effects
from aios.ledger.webhooks import (
    WEBHOOK_SIGNAL,
    WebhookEvent,
    WebhookIngestor,
    WebhookServer,
    reconcile_workflow_id,
)
from aios.settings import Settings
from tests.integration.test_reconcile import (
    FAST,
    HANG,
    call_for,
    call_through_the_ledger,
    ledger_row,
    new_key,
    reconcile_input,
    wait_for_hung_requests,
    worker_on,
)
from tests.support.effect_server import EffectServer, Fault
from tests.support.env import child_env
from workflows.reconcile import ReconcileEffectWorkflow

REPO = Path(__file__).resolve().parents[2]
PATIENT = timedelta(seconds=60)


async def unknown_payment(database_url: str) -> str:
    """A Stripe charge whose answer was lost: Stripe cannot be looked up, only its webhook can tell."""
    key = new_key("charge")
    async with await psycopg.AsyncConnection.connect(database_url, autocommit=True) as conn:
        await effects.begin(
            conn, key=key, run_id="r", action="charge", connector="payments", request={"amount": 5}
        )
        await effects.finish(conn, key=key, state="unknown", error="no answer in time")
    return key


@pytest.fixture
async def worker_client(
    stack_settings: Settings, temporal_client: Client, task_queue: str
) -> AsyncIterator[AiosClient]:
    async with worker_on(stack_settings, temporal_client, task_queue) as client:
        yield client


def payment_reconciler(key: str, **timing: timedelta) -> ReconcileInput:
    return ReconcileInput(
        effect_key=key,
        run_id="r",
        connector="payments",
        action="charge",
        target="payment_intent",
        params={"amount": 5},
        **({"poll_interval": FAST, "max_duration": PATIENT} | timing),
    )


async def start_reconciler(
    client: Client, task_queue: str, request: ReconcileInput
) -> WorkflowHandle[Any, ReconcileResult]:
    return await client.start_workflow(
        ReconcileEffectWorkflow.run,
        request,
        id=reconcile_workflow_id(request.effect_key),
        task_queue=task_queue,
        execution_timeout=timedelta(seconds=90),
    )


async def wait_until_polled(handle: WorkflowHandle[Any, ReconcileResult], polls: int = 1) -> None:
    for _ in range(100):
        progress = await handle.query(ReconcileEffectWorkflow.state)
        if progress.polls >= polls:
            return
        await asyncio.sleep(0.1)
    raise AssertionError(f"{handle.id} never polled {polls} times")


async def aios_webhook_send(*args: str) -> tuple[int, str]:
    """`aios webhook send ...` in its own process, as a script would run it."""
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-c",
        "from aios.cli.effects import webhook_app; webhook_app(prog_name='aios webhook')",
        "send",
        *args,
        cwd=REPO,
        env=child_env(),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    output, _ = await process.communicate()
    return process.returncode or 0, " ".join(output.decode().split())


async def kept_events(database_url: str, event_id: str) -> int:
    async with await psycopg.AsyncConnection.connect(database_url, autocommit=True) as conn:
        cursor = await conn.execute(
            "SELECT count(*) FROM aios_webhook_events WHERE event_id = %s", (event_id,)
        )
        row = await cursor.fetchone()
    assert row is not None
    return int(row[0])


async def test_a_duplicate_delivery_reaches_the_reconciler_once(
    database_url: str, worker_client: AiosClient, task_queue: str
) -> None:
    key = await unknown_payment(database_url)
    handle = await start_reconciler(worker_client.temporal, task_queue, payment_reconciler(key))
    await wait_until_polled(handle)
    event_id = f"evt_{uuid.uuid4().hex[:12]}"
    response = {"id": "pi_123", "object": "payment_intent", "status": "succeeded"}
    send = ["--source", "stripe", "--event-id", event_id, "--effect", key, "--outcome", "succeeded"]

    first = await aios_webhook_send(*send, "--response", json.dumps(response))
    # The redelivery even says something else: the event id decides, the first answer stands.
    second = await aios_webhook_send(*send[:-1], "failed", "--error", "declined")

    assert first == (0, f"event {event_id} for {key}: delivered to {reconcile_workflow_id(key)}")
    assert second[0] == 0
    assert "duplicate" in second[1]
    result = await handle.result()
    assert (result.outcome, result.resolved_by, result.event_id) == ("succeeded", "webhook", event_id)
    assert result.webhooks == [event_id]
    progress: ReconcileProgress = await handle.query(ReconcileEffectWorkflow.state)
    assert progress.webhooks == [event_id]
    assert progress.duplicate_webhooks == 0  # the duplicate never got as far as the workflow
    record = await ledger_row(database_url, key)
    assert (record.state, record.response) == ("succeeded", response)
    assert await kept_events(database_url, event_id) == 1


async def test_a_redelivered_signal_is_ignored_by_the_reconciler(
    stack_settings: Settings, database_url: str, temporal_client: Client, task_queue: str
) -> None:
    # Both signals are in the history before any worker runs the workflow: the second one
    # (same event id) must count as a duplicate, whatever sent it.
    key = await unknown_payment(database_url)
    handle = await start_reconciler(temporal_client, task_queue, payment_reconciler(key))
    event = WebhookEvent(event_id="evt_twice", source="stripe", effect_key=key, outcome="failed", error="no")
    await handle.signal(WEBHOOK_SIGNAL, event)
    await handle.signal(WEBHOOK_SIGNAL, event)
    async with worker_on(stack_settings, temporal_client, task_queue):
        result = await asyncio.wait_for(handle.result(), timeout=60)
        progress = await handle.query(ReconcileEffectWorkflow.state)
    assert (result.outcome, result.resolved_by, result.ledger_state) == ("failed", "webhook", "failed")
    assert result.webhooks == ["evt_twice"]
    assert progress.duplicate_webhooks == 1
    assert (await ledger_row(database_url, key)).state == "failed"


async def test_a_webhook_with_no_reconciler_yet_is_kept_and_found_when_it_polls(
    stack_settings: Settings, database_url: str, worker_client: AiosClient, task_queue: str
) -> None:
    key = await unknown_payment(database_url)
    event_id = f"evt_{uuid.uuid4().hex[:12]}"
    code, said = await aios_webhook_send(
        "--source", "stripe", "--event-id", event_id, "--effect", key, "--outcome", "succeeded"
    )
    assert code == 0
    assert "no reconciler is running" in said
    assert (await ledger_row(database_url, key)).state == "unknown"  # webhooks never write the ledger

    result = await (
        await start_reconciler(worker_client.temporal, task_queue, payment_reconciler(key))
    ).result()
    assert (result.outcome, result.resolved_by, result.event_id) == ("succeeded", "webhook", event_id)
    assert result.polls == 1
    assert (await ledger_row(database_url, key)).state == "succeeded"


async def test_a_missing_webhook_is_caught_by_polling(
    stack_settings: Settings,
    database_url: str,
    worker_client: AiosClient,
    task_queue: str,
    effect_server: EffectServer,
) -> None:
    # The server hangs, then applies the effect late; no webhook ever comes. The first lookups
    # say "not applied" (true at the time, and not believed before the settle time); a later
    # poll finds the effect.
    key = new_key()
    call = call_for(effect_server, key)
    effect_server.faults.append(Fault(hang_seconds=HANG))
    failure = await call_through_the_ledger(stack_settings, call)
    assert failure.type == "TimeoutError_"

    request = reconcile_input(call, poll_interval=FAST, settle=timedelta(seconds=30))
    result = await (await start_reconciler(worker_client.temporal, task_queue, request)).result()

    assert (result.outcome, result.resolved_by) == ("succeeded", "lookup")
    assert result.webhooks == []
    assert effect_server.lookups.count(key) == result.polls  # usually several: "not yet", then found
    assert (await ledger_row(database_url, key)).state == "succeeded"
    await asyncio.to_thread(wait_for_hung_requests)
    assert effect_server.applied[key] == 1


@pytest.fixture
async def webhook_endpoint(stack_settings: Settings, temporal_client: Client) -> AsyncIterator[str]:
    """`aios webhook serve` in this process, on a free loopback port."""
    stop = asyncio.Event()
    bound: asyncio.Future[int] = asyncio.get_running_loop().create_future()
    async with WebhookIngestor(stack_settings, client=temporal_client) as ingestor:
        server = asyncio.create_task(
            WebhookServer(ingestor).serve(
                host="127.0.0.1", port=0, stop=stop, on_ready=lambda _, port: bound.set_result(port)
            )
        )
        port = await asyncio.wait_for(bound, timeout=10)
        yield f"http://127.0.0.1:{port}"
        stop.set()
        await server


async def test_the_http_endpoint_delivers_once_and_explains_refusals(
    webhook_endpoint: str, database_url: str, worker_client: AiosClient, task_queue: str
) -> None:
    key = await unknown_payment(database_url)
    handle = await start_reconciler(worker_client.temporal, task_queue, payment_reconciler(key))
    await wait_until_polled(handle)
    event = {"id": f"evt_{uuid.uuid4().hex[:12]}", "effect_key": key, "outcome": "succeeded"}
    async with httpx.AsyncClient(base_url=webhook_endpoint, timeout=10) as http:
        malformed = await http.post("/webhooks/stripe", json={"effect_key": key, "outcome": "ok"})
        first = await http.post("/webhooks/stripe", json=event)
        again = await http.post("/webhooks/stripe", json=event)
        elsewhere = await http.post("/hooks/stripe", json=event)
        wrong_method = await http.get("/webhooks/stripe")
        not_json = await http.post("/webhooks/stripe", content=b"id=1")

    assert malformed.status_code == 400
    assert "'id'" in malformed.json()["error"]
    assert "'outcome' must be 'succeeded' or 'failed', got 'ok'" in malformed.json()["error"]
    assert first.status_code == 200
    assert first.json() | {"note": ""} == {
        "event_id": event["id"],
        "effect_key": key,
        "duplicate": False,
        "signalled": True,
        "note": "",
    }
    assert again.status_code == 200
    assert again.json()["duplicate"] is True
    assert again.json()["signalled"] is False
    assert elsewhere.status_code == 404
    assert wrong_method.status_code == 405
    assert not_json.status_code == 400
    result = await handle.result()
    assert (result.outcome, result.resolved_by, result.webhooks) == ("succeeded", "webhook", [event["id"]])
