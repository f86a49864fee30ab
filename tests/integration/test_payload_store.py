"""Large payloads live in Postgres, not in Temporal's history (docs/ARCHITECTURE.md, decision 9).

The driver against the real database (round trip, one row per content hash, a missing or altered
row, forgetting), then real runs on the dev server with a worker in this process: a workflow
whose input, activity input, activity result and result are each 200 KiB leaves only references
in its history, reads back intact through clients that share no cache, and never puts a canary
in plain text into Postgres or Temporal's SQLite file.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import secrets
import uuid
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from datetime import timedelta
from typing import Any

from temporalio import activity, workflow

# The sandbox re-imports this module to validate the workflow below: everything else passes through.
with workflow.unsafe.imports_passed_through():
    import psycopg
    import pytest
    from google.protobuf.message import Message
    from temporalio.api.common.v1 import Payload
    from temporalio.api.enums.v1 import EventType
    from temporalio.api.history.v1 import HistoryEvent
    from temporalio.client import Client, WorkflowHandle
    from temporalio.converter import (
        StorageDriverClaim,
        StorageDriverRetrieveContext,
        StorageDriverStoreContext,
        StorageDriverWorkflowInfo,
    )
    from temporalio.worker import Worker

    from aios.settings import Settings
    from aios.stack import temporal
    from aios.temporal.connection import connect
    from aios.temporal.payload_store import (
        PayloadCorrupted,
        PayloadMissing,
        PayloadStoreUnavailable,
        PostgresPayloadDriver,
        forget_workflow_payloads,
    )
    from workers.main import workflow_runner

STEP = timedelta(seconds=30)
PAYLOAD_CHARS = 200 * 1024
ECHO_SUFFIX = " (echoed)"
REFERENCE_TYPE = b"temporal.api.sdk.v1.ExternalStorageReference"


@activity.defn(name="payload-store-echo")
async def echo(text: str) -> str:
    return text + ECHO_SUFFIX


@workflow.defn(name="PayloadStoreEcho")
class PayloadStoreEcho:
    @workflow.run
    async def run(self, text: str) -> str:
        return await workflow.execute_activity(echo, text, start_to_close_timeout=STEP)


# -- helpers ------------------------------------------------------------------------------------


def payload(text: str) -> Payload:
    return Payload(metadata={"encoding": b"binary/plain", "note": b"test"}, data=text.encode())


def store_context(workflow_id: str) -> StorageDriverStoreContext:
    return StorageDriverStoreContext(target=StorageDriverWorkflowInfo(namespace="default", id=workflow_id))


def claim(digest_hex: str) -> StorageDriverClaim:
    return StorageDriverClaim(claim_data={"sha256": digest_hex})


async def query(database_url: str, sql: str, *params: Any) -> list[tuple[Any, ...]]:
    async with await psycopg.AsyncConnection.connect(database_url, autocommit=True) as conn:
        cursor = await conn.execute(sql.encode(), params)
        return await cursor.fetchall() if cursor.description else []


async def delete_blobs(database_url: str, digests: list[bytes]) -> None:
    await query(database_url, "DELETE FROM aios_payload_owners WHERE sha256 = ANY(%s)", digests)
    await query(database_url, "DELETE FROM aios_payloads WHERE sha256 = ANY(%s)", digests)


def history_payloads(events: list[HistoryEvent]) -> list[Payload]:
    return [found for event in events for found in _payloads_in(event)]


def _payloads_in(message: Message) -> Iterator[Payload]:
    if isinstance(message, Payload):
        yield message
        return
    for field, value in message.ListFields():
        if field.message_type is None or field.message_type.GetOptions().map_entry:
            continue  # maps (headers, memo, search attributes) hold no payload of this test's
        yield from (
            child for item in (value if field.is_repeated else [value]) for child in _payloads_in(item)
        )


def reference_digest(reference: Payload) -> bytes:
    assert reference.metadata["messageType"] == REFERENCE_TYPE
    document = json.loads(reference.data)
    assert document["driverName"] == "aios-postgres"
    return bytes.fromhex(document["claimData"]["sha256"])


def temporal_files(settings: Settings) -> bytes:
    database = temporal.database_file(settings)
    files = [database, *(database.with_name(database.name + s) for s in ("-wal", "-journal", "-shm"))]
    return b"".join(path.read_bytes() for path in files if path.exists())


@asynccontextmanager
async def echo_worker(settings: Settings) -> AsyncIterator[None]:
    # A client of its own: the worker reads the input from Postgres, not from the starter's cache.
    client = await connect(settings)
    worker = Worker(
        client,
        task_queue=settings.task_queue,
        workflows=[PayloadStoreEcho],
        activities=[echo],
        workflow_runner=workflow_runner(),
    )
    async with worker:
        yield


async def run_echo(settings: Settings, text: str) -> tuple[WorkflowHandle[Any, str], str]:
    starter = await connect(settings)
    async with echo_worker(settings):
        handle = await starter.start_workflow(
            PayloadStoreEcho.run,
            text,
            id=f"payload-store-{uuid.uuid4().hex[:10]}",
            task_queue=settings.task_queue,
        )
        return handle, await asyncio.wait_for(handle.result(), 60)


def big_text(canary: str) -> str:
    return canary + secrets.token_hex(PAYLOAD_CHARS // 2)


@pytest.fixture
def settings(stack_settings: Settings, task_queue: str) -> Settings:
    assert stack_settings.payload_encryption, "encryption is on by default"
    return stack_settings.model_copy(update={"task_queue": task_queue})


# -- the driver against Postgres ------------------------------------------------------------------


async def test_a_batch_round_trips_through_postgres(database_url: str) -> None:
    first, second = payload(f"first {uuid.uuid4()}"), payload(f"second {uuid.uuid4()}")
    claims = await PostgresPayloadDriver(database_url).store(store_context("wf-a"), [first, second, first])

    digests = [c.claim_data["sha256"] for c in claims]
    assert digests[0] == digests[2] != digests[1]
    assert digests[0] == hashlib.sha256(first.SerializeToString(deterministic=True)).hexdigest()
    # A second driver has an empty cache: what it returns came from Postgres.
    back = await PostgresPayloadDriver(database_url).retrieve(StorageDriverRetrieveContext(), claims)
    assert back == [first, second, first]


async def test_the_same_payload_stored_twice_is_one_row_with_two_owners(database_url: str) -> None:
    same = payload(f"shared {uuid.uuid4()}")
    driver = PostgresPayloadDriver(database_url)
    [once] = await driver.store(store_context("wf-a"), [same])
    [again] = await driver.store(store_context("wf-b"), [same])

    assert once == again
    digest = bytes.fromhex(once.claim_data["sha256"])
    rows = await query(
        database_url, "SELECT size_bytes, sha256(data) FROM aios_payloads WHERE sha256 = %s", digest
    )
    assert rows == [(same.ByteSize(), digest)]
    owners = await query(database_url, "SELECT owner_id FROM aios_payload_owners WHERE sha256 = %s", digest)
    assert sorted(owner for (owner,) in owners) == ["wf-a", "wf-b"]


async def test_a_missing_hash_names_the_hash_and_the_fix(database_url: str) -> None:
    unknown = secrets.token_hex(32)
    with pytest.raises(
        PayloadMissing, match=rf"sha256 {unknown}.*AIOS_DATABASE_URL.*restore the row"
    ) as missing:
        await PostgresPayloadDriver(database_url).retrieve(StorageDriverRetrieveContext(), [claim(unknown)])
    assert "table aios_payloads" in str(missing.value)


async def test_an_altered_row_is_refused(database_url: str) -> None:
    [stored] = await PostgresPayloadDriver(database_url).store(
        store_context("wf-a"), [payload(str(uuid.uuid4()))]
    )
    digest = bytes.fromhex(stored.claim_data["sha256"])
    await query(
        database_url, "UPDATE aios_payloads SET data = %s, size_bytes = 3 WHERE sha256 = %s", b"bad", digest
    )
    with pytest.raises(PayloadCorrupted, match=stored.claim_data["sha256"]):
        await PostgresPayloadDriver(database_url).retrieve(StorageDriverRetrieveContext(), [stored])


async def test_forgetting_a_workflow_keeps_blobs_another_one_holds(database_url: str) -> None:
    driver = PostgresPayloadDriver(database_url)
    a, b = f"wf-a-{uuid.uuid4()}", f"wf-b-{uuid.uuid4()}"
    shared, own = payload(f"shared {uuid.uuid4()}"), payload(f"own {uuid.uuid4()}")
    claims = [
        *await driver.store(store_context(a), [shared, own]),
        *await driver.store(store_context(b), [shared]),
    ]
    digests = [bytes.fromhex(c.claim_data["sha256"]) for c in claims[:2]]

    async with await psycopg.AsyncConnection.connect(database_url, autocommit=True) as conn:
        assert await forget_workflow_payloads(conn, namespace="default", workflow_id=a) == 1
        left = await query(database_url, "SELECT sha256 FROM aios_payloads WHERE sha256 = ANY(%s)", digests)
        assert left == [(digests[0],)], "the shared blob stays, the one only `a` held is gone"
        assert await forget_workflow_payloads(conn, namespace="default", workflow_id=b) == 1
    assert await query(database_url, "SELECT 1 FROM aios_payloads WHERE sha256 = ANY(%s)", digests) == []


async def test_an_unmigrated_database_says_to_migrate(scratch_database: str) -> None:
    with pytest.raises(PayloadStoreUnavailable, match=r"run `aios db migrate`"):
        await PostgresPayloadDriver(scratch_database).store(store_context("wf-a"), [payload("x")])


# -- real runs ------------------------------------------------------------------------------------


async def test_a_large_run_keeps_only_references_in_its_history(settings: Settings) -> None:
    text = big_text(f"history-canary-{uuid.uuid4()}")
    handle, result = await run_echo(settings, text)
    assert result == text + ECHO_SUFFIX

    events = (await handle.fetch_history()).events
    references = [p for p in history_payloads(events) if p.metadata.get("encoding") == b"json/protobuf"]
    # Workflow input, activity input, activity result, workflow result: each replaced by a reference.
    assert len(references) == 4
    assert all(p.external_payloads[0].size_bytes > PAYLOAD_CHARS for p in references)
    digests = [reference_digest(p) for p in references]
    rows = await query(
        settings.resolved_database_url,
        "SELECT sha256 = sha256(data), size_bytes FROM aios_payloads WHERE sha256 = ANY(%s)",
        digests,
    )
    assert sorted(rows) == sorted((True, p.external_payloads[0].size_bytes) for p in references)
    owners = await query(
        settings.resolved_database_url,
        "SELECT DISTINCT owner_kind, owner_id FROM aios_payload_owners WHERE sha256 = ANY(%s)",
        digests,
    )
    assert owners == [("workflow", handle.id)]

    offloaded_bytes = sum(event.ByteSize() for event in events)
    inline_handle, _ = await run_echo(settings.model_copy(update={"payload_offload_threshold": 0}), text)
    inline_bytes = sum(event.ByteSize() for event in (await inline_handle.fetch_history()).events)
    print(
        f"history with 4 x {PAYLOAD_CHARS} B payloads: {offloaded_bytes} B offloaded, {inline_bytes} B inline"
    )
    assert offloaded_bytes < 16 * 1024
    assert inline_bytes > 4 * PAYLOAD_CHARS


async def test_offloaded_payloads_are_ciphertext_in_postgres(settings: Settings) -> None:
    canary = f"payload-store-canary-{uuid.uuid4()}"
    handle, _ = await run_echo(settings, big_text(canary))
    found = await query(
        settings.resolved_database_url,
        "SELECT count(*) FROM aios_payloads WHERE position(%s::bytea IN data) > 0",
        canary.encode(),
    )
    assert found == [(0,)]
    stored = temporal_files(settings)
    assert handle.id.encode() in stored, "the scan must see this run's rows at all"
    assert canary.encode() not in stored


async def test_without_encryption_the_same_scan_finds_the_canary_in_postgres_only(settings: Settings) -> None:
    """The scan above has teeth; and offloading alone keeps the payload out of Temporal's files."""
    canary = f"payload-store-canary-plain-{uuid.uuid4()}"
    handle, _ = await run_echo(settings.model_copy(update={"payload_encryption": False}), big_text(canary))
    found = await query(
        settings.resolved_database_url,
        "SELECT count(*) FROM aios_payloads WHERE position(%s::bytea IN data) > 0",
        canary.encode(),
    )
    assert found[0][0] >= 1
    stored = temporal_files(settings)
    assert handle.id.encode() in stored
    assert canary.encode() not in stored


async def test_a_result_whose_blob_is_gone_fails_with_its_hash(settings: Settings) -> None:
    handle, _ = await run_echo(settings, big_text("gone"))
    events = (await handle.fetch_history()).events
    result_reference = events[-1].workflow_execution_completed_event_attributes.result.payloads[0]
    digest = reference_digest(result_reference)
    await delete_blobs(settings.resolved_database_url, [digest])

    reader: Client = await connect(settings)  # a fresh converter: nothing cached
    with pytest.raises(PayloadMissing, match=f"sha256 {digest.hex()}"):
        await reader.get_workflow_handle(handle.id).result()


async def test_a_run_whose_input_blob_is_gone_waits_and_resumes_once_it_is_back(settings: Settings) -> None:
    starter = await connect(settings)
    handle = await starter.start_workflow(
        PayloadStoreEcho.run,
        big_text("back"),
        id=f"payload-store-{uuid.uuid4().hex[:10]}",
        task_queue=settings.task_queue,
    )
    started = (await handle.fetch_history()).events[0].workflow_execution_started_event_attributes
    digest = reference_digest(started.input.payloads[0])
    row = await query(
        settings.resolved_database_url, "SELECT data, size_bytes FROM aios_payloads WHERE sha256 = %s", digest
    )
    await delete_blobs(settings.resolved_database_url, [digest])

    async with echo_worker(settings):
        failure = await asyncio.wait_for(first_workflow_task_failure(handle), 30)
        # The message is sealed by the codec like every failure; the type stays readable.
        assert failure.application_failure_info.type == PayloadMissing.__name__
        await query(
            settings.resolved_database_url,
            "INSERT INTO aios_payloads (sha256, data, size_bytes) VALUES (%s, %s, %s)",
            digest,
            *row[0],
        )
        assert (await asyncio.wait_for(handle.result(), 60)).endswith(ECHO_SUFFIX)


async def first_workflow_task_failure(handle: WorkflowHandle[Any, str]) -> Any:
    while True:
        for event in (await handle.fetch_history()).events:
            if event.event_type == EventType.EVENT_TYPE_WORKFLOW_TASK_FAILED:
                return event.workflow_task_failed_event_attributes.failure
        await asyncio.sleep(0.2)
