"""Payload encryption end to end: a known payload and a known secret never appear in plain text.

Real runs on the dev server, on workers in this process: the payload canary must be absent
from the Temporal SQLite file and from the raw history (read without the codec), while a
client with the codec reads it back; the secret canary (a Stripe key in the worker's
settings, which a careless activity logs and puts in its error) must be absent from the
worker's logs, the error the client sees, the history, the spans and the SQLite file.

The canary workflows below never write audit rows, so the payload canary cannot reach the
audit table by construction (Ping would: it records its message as audit detail).
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from datetime import timedelta
from pathlib import Path

from temporalio import activity, workflow
from temporalio.exceptions import ActivityError, ApplicationError

# The sandbox re-imports this module to validate the workflows below: everything else passes through.
with workflow.unsafe.imports_passed_through():
    import pytest
    from google.protobuf.message import Message
    from opentelemetry import trace
    from opentelemetry.sdk.trace import TracerProvider
    from pydantic import SecretStr
    from temporalio.api.common.v1 import Payload
    from temporalio.client import Client, WorkflowFailureError, WorkflowHandle
    from temporalio.contrib.pydantic import pydantic_data_converter
    from temporalio.worker import Worker

    from aios.settings import Settings
    from aios.stack import temporal
    from aios.temporal.connection import connect
    from aios.temporal.redaction import MASK
    from workers.main import run_worker, workflow_runner

STEP = timedelta(seconds=30)
log = logging.getLogger("tests.no_plaintext")


class CanaryActivities:
    def __init__(self, settings: Settings) -> None:
        self._stripe_key = settings.stripe_api_key

    @activity.defn(name="canary-echo")
    async def echo(self, text: str) -> str:
        return f"echo: {text}"

    @activity.defn(name="canary-careless-charge")
    async def careless_charge(self, amount: int) -> str:
        # What a careless connector does with its secret: log it, and quote it in its error.
        key = self._stripe_key.get_secret_value() if self._stripe_key else ""
        log.warning("charging %d with key %s", amount, key)
        raise ApplicationError(f"card declined; key {key} was refused", non_retryable=True)


@workflow.defn(name="CanaryEcho")
class CanaryEcho:
    @workflow.run
    async def run(self, text: str) -> str:
        echoed: str = await workflow.execute_activity(
            "canary-echo", text, start_to_close_timeout=STEP, result_type=str
        )
        return echoed


@workflow.defn(name="CanaryCharge")
class CanaryCharge:
    @workflow.run
    async def run(self, text: str) -> str:
        await workflow.execute_activity("canary-careless-charge", len(text), start_to_close_timeout=STEP)
        return text


@asynccontextmanager
async def canary_worker(client: Client, settings: Settings, task_queue: str) -> AsyncIterator[None]:
    worker = Worker(
        client,
        task_queue=task_queue,
        workflows=[CanaryEcho, CanaryCharge],
        activities=[CanaryActivities(settings).echo, CanaryActivities(settings).careless_charge],
        workflow_runner=workflow_runner(),  # the production sandbox, as the real worker has it
    )
    async with worker:
        yield


def temporal_files(settings: Settings) -> bytes:
    """The raw bytes of the dev server's SQLite database and its journals, as a thief reads them."""
    database = temporal.database_file(settings)
    files = [database, *(database.with_name(database.name + s) for s in ("-wal", "-journal", "-shm"))]
    return b"".join(path.read_bytes() for path in files if path.exists())


def without_codec(client: Client) -> Client:
    """The same server connection, reading payloads as stored: pydantic JSON, no codec."""
    return Client(client.service_client, namespace=client.namespace, data_converter=pydantic_data_converter)


async def raw_history(client: Client, workflow_id: str) -> bytes:
    history = await without_codec(client).get_workflow_handle(workflow_id).fetch_history()
    return b"".join(event.SerializeToString() for event in history.events) + history.to_json().encode()


# Headers carry only the trace context and search attributes must stay readable for the
# server's index: both are outside the codec by Temporal's design, so they are not counted.
NOT_PAYLOAD_DATA = frozenset({"header", "search_attributes"})


async def history_payloads(client: Client, workflow_id: str) -> list[Payload]:
    history = await without_codec(client).get_workflow_handle(workflow_id).fetch_history()
    return [payload for event in history.events for payload in _payloads_in(event)]


def _payloads_in(message: Message) -> Iterator[Payload]:
    if isinstance(message, Payload):
        yield message
        return
    for field, value in message.ListFields():
        if field.message_type is None or field.name in NOT_PAYLOAD_DATA:
            continue
        if field.message_type.GetOptions().map_entry:
            children = list(value.values()) if field.message_type.fields_by_name["value"].message_type else []
        elif field.is_repeated:
            children = list(value)
        else:
            children = [value]
        for child in children:
            yield from _payloads_in(child)


@pytest.fixture
def settings(stack_settings: Settings, task_queue: str) -> Settings:
    secret = f"sk_test_canary{uuid.uuid4().hex}"
    return stack_settings.model_copy(update={"task_queue": task_queue, "stripe_api_key": SecretStr(secret)})


async def test_payloads_are_encrypted_at_rest_and_read_back_with_the_codec(
    settings: Settings, task_queue: str
) -> None:
    assert settings.payload_encryption, "encryption is on by default"
    canary = f"payload-canary-{uuid.uuid4()}"
    client = await connect(settings)
    async with canary_worker(client, settings, task_queue):
        handle: WorkflowHandle[CanaryEcho, str] = await client.start_workflow(
            CanaryEcho.run,
            canary,
            id=f"canary-{uuid.uuid4().hex[:10]}",
            task_queue=task_queue,
            memo={"note": canary},
            static_summary=f"summary {canary}",
        )
        assert await asyncio.wait_for(handle.result(), 60) == f"echo: {canary}"

    described = await handle.describe()
    assert await described.static_summary() == f"summary {canary}"
    assert (await described.memo())["note"] == canary

    history = await raw_history(client, handle.id)
    assert canary.encode() not in history
    stored_payloads = await history_payloads(client, handle.id)
    # Input, activity input and result, workflow result, memo and summary: all sealed.
    assert len(stored_payloads) >= 6
    assert {payload.metadata["encoding"] for payload in stored_payloads} == {b"binary/encrypted"}
    with pytest.raises(Exception, match=r"(?i)encoding|convert"):
        await without_codec(client).get_workflow_handle(handle.id).result()

    stored = temporal_files(settings)
    assert handle.id.encode() in stored, "the scan must see this run's rows at all"
    assert canary.encode() not in stored


async def test_without_encryption_the_same_scan_finds_the_payload(
    stack_settings: Settings, task_queue: str
) -> None:
    """The scans above have teeth: with AIOS_PAYLOAD_ENCRYPTION=false the canary is right there."""
    plain_settings = stack_settings.model_copy(update={"task_queue": task_queue, "payload_encryption": False})
    canary = f"payload-canary-plain-{uuid.uuid4()}"
    client = await connect(plain_settings)
    async with canary_worker(client, plain_settings, task_queue):
        handle = await client.start_workflow(
            CanaryEcho.run, canary, id=f"canary-plain-{uuid.uuid4().hex[:10]}", task_queue=task_queue
        )
        await asyncio.wait_for(handle.result(), 60)
    assert canary.encode() in await raw_history(client, handle.id)
    assert canary.encode() in temporal_files(plain_settings)


async def test_a_secret_stays_out_of_logs_errors_history_and_spans(
    settings: Settings, task_queue: str, caplog: pytest.LogCaptureFixture
) -> None:
    secret = settings.stripe_api_key.get_secret_value() if settings.stripe_api_key else ""
    caplog.set_level(logging.DEBUG)
    client = await connect(settings)
    stop = asyncio.Event()
    # The real worker too, holding the key in its connectors: its start-up and shutdown logs count.
    real_worker = asyncio.create_task(run_worker(settings, stop=stop, task_queue=f"{task_queue}-main"))
    try:
        async with canary_worker(client, settings, task_queue):
            handle = await client.start_workflow(
                CanaryCharge.run,
                "order 42",
                id=f"canary-charge-{uuid.uuid4().hex[:10]}",
                task_queue=task_queue,
            )
            with pytest.raises(WorkflowFailureError) as failed:
                await asyncio.wait_for(handle.result(), 60)
    finally:
        stop.set()
        await real_worker

    activity_error = failed.value.cause
    assert isinstance(activity_error, ActivityError)
    declined = activity_error.cause
    assert isinstance(declined, ApplicationError)
    assert declined.message == f"card declined; key {MASK} was refused"

    assert f"charging 8 with key {MASK}" in caplog.text, "the careless log line was captured, masked"
    assert secret not in caplog.text
    assert all(secret not in str(record.__dict__) for record in caplog.records)
    history = await raw_history(client, handle.id)
    assert b"Encoded failure" in history  # messages sealed, not only masked
    assert secret.encode() not in history
    assert secret.encode() not in temporal_files(settings)
    assert secret not in spans_written(settings)


def spans_written(settings: Settings) -> str:
    provider = trace.get_tracer_provider()
    if isinstance(provider, TracerProvider):
        provider.force_flush()
    path: Path = settings.resolved_trace_file
    return path.read_text(errors="replace") if path.exists() else ""
