"""Retention and forgetting on the real stack: Postgres, an embedded Qdrant Edge shard in a temp
directory, the test embedder (hash), and the Temporal dev server for runs and the workflow."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import timedelta
from pathlib import Path
from typing import TypeVar

import httpx
import numpy as np
import psycopg
import pytest
from psycopg_pool import AsyncConnectionPool
from temporalio.client import Client, ScheduleActionExecutionStartWorkflow, ScheduleHandle
from temporalio.service import RPCError, RPCStatusCode
from temporalio.worker import Worker

from activities.deps import ActivityDeps
from activities.retention import RetentionActivities
from aios.client import AiosClient
from aios.memory.embedders import HashEmbedder
from aios.memory.messages import ForgetRequest, MemoryFilter, RememberRequest
from aios.memory.retention import (
    Retention,
    RetentionReport,
    RetentionRequest,
    TemporalRuns,
    create_retention_schedule,
)
from aios.memory.service import MemoryService
from aios.memory.vectors import EdgeStore
from aios.models.run import RunStatus
from aios.settings import MemoryRetentionRule, RetentionPolicy, RunRetentionRule, Settings
from tests.support.effect_server import EffectServer
from tests.support.manifests import noop_manifest, refund_like_manifest, unique_agent
from tests.support.runs import wait_for_status
from workflows.retention import RetentionWorkflow

T = TypeVar("T")

POLICY = RetentionPolicy(
    memories=[
        MemoryRetentionRule(agent="desk", kind="note", keep_days=30, then="archive"),
        MemoryRetentionRule(kind="secret", keep_days=7, then="delete"),
        MemoryRetentionRule(keep_days=365, then="delete"),
    ]
)


def _service(pool: AsyncConnectionPool, shard: Path) -> MemoryService:
    return MemoryService(
        pool=pool,
        embedder=HashEmbedder(),
        store_factory=lambda _name, dimension: EdgeStore(shard, dimension),
    )


@pytest.fixture
async def memory(pool: AsyncConnectionPool, tmp_path: Path) -> AsyncIterator[MemoryService]:
    service = _service(pool, tmp_path / "shard")
    await service.open()
    yield service
    await service.close()


async def remember_aged(
    memory: MemoryService, *, agent: str, kind: str, days_old: float, subject: str = "acme"
) -> str:
    """A memory written now, then dated back: what a memory written `days_old` days ago looks like."""
    result = await memory.remember(
        RememberRequest(
            key=str(uuid.uuid4()),
            agent=agent,
            kind=kind,
            subject=subject,
            text=f"{kind} by {agent} {days_old}",
        )
    )
    async with memory.pool.connection() as conn:
        await conn.execute(
            "UPDATE aios_memories SET created_at = now() - make_interval(secs => %s) WHERE memory_id = %s",
            (days_old * 86_400, result.memory_id),
        )
    return result.memory_id


async def vector_ids(memory: MemoryService) -> set[str]:
    """Every id the vector store holds (a search wide enough to return all of them)."""
    assert memory.store is not None
    probe = np.ones(await memory.embedder.dimension(), dtype=np.float32)
    hits = memory.store.search(probe, MemoryFilter(), 10_000)
    return {hit.memory_id for hit in hits}


async def rows(pool: AsyncConnectionPool) -> dict[str, bool]:
    """memory id -> archived, for every document in Postgres."""
    async with pool.connection() as conn:
        cursor = await conn.execute("SELECT memory_id::text, archived_at IS NOT NULL FROM aios_memories")
        return {row[0]: row[1] for row in await cursor.fetchall()}


async def tombstone_count(pool: AsyncConnectionPool) -> int:
    async with pool.connection() as conn:
        cursor = await conn.execute("SELECT count(*) FROM aios_memory_tombstones")
        row = await cursor.fetchone()
    return int(row[0]) if row else -1


async def aged_set(memory: MemoryService) -> dict[str, str]:
    """One memory per case the policy distinguishes, by what should become of it."""
    return {
        "archive": await remember_aged(memory, agent="desk", kind="note", days_old=40),
        "young note": await remember_aged(memory, agent="desk", kind="note", days_old=10),
        "delete secret": await remember_aged(memory, agent="desk", kind="secret", days_old=8),
        "young secret": await remember_aged(memory, agent="ops", kind="secret", days_old=6),
        "delete old": await remember_aged(memory, agent="ops", kind="note", days_old=400),
        # The first matching rule wins: desk's notes are archived at 30 days, never deleted at 365.
        "archive, not delete": await remember_aged(memory, agent="desk", kind="note", days_old=500),
        "kept old": await remember_aged(memory, agent="ops", kind="note", days_old=300),
    }


async def test_memories_are_archived_or_deleted_by_age_and_the_first_matching_rule(
    memory: MemoryService, pool: AsyncConnectionPool
) -> None:
    ids = await aged_set(memory)
    assert await vector_ids(memory) == set(ids.values())

    report = await Retention(pool, memory=memory).apply(POLICY)

    assert [(o.archived, o.deleted) for o in report.memory_rules] == [(2, 0), (0, 1), (0, 1)]
    assert (report.vectors_deleted, report.vectors_pending) == (4, 0)
    assert await rows(pool) == {
        ids["archive"]: True,
        ids["archive, not delete"]: True,
        ids["young note"]: False,
        ids["young secret"]: False,
        ids["kept old"]: False,
    }
    assert await vector_ids(memory) == {ids["young note"], ids["young secret"], ids["kept old"]}
    assert await tombstone_count(pool) == 0

    again = await Retention(pool, memory=memory).apply(POLICY)
    assert (again.documents_archived, again.documents_deleted, again.vectors_deleted) == (0, 0, 0)


async def test_a_delete_rule_also_removes_memories_archived_before(
    memory: MemoryService, pool: AsyncConnectionPool
) -> None:
    old = await remember_aged(memory, agent="desk", kind="note", days_old=100)
    await Retention(pool, memory=memory).apply(
        RetentionPolicy(memories=[MemoryRetentionRule(keep_days=30, then="archive")])
    )
    assert await rows(pool) == {old: True}

    report = await Retention(pool, memory=memory).apply(
        RetentionPolicy(memories=[MemoryRetentionRule(keep_days=90, then="delete")])
    )
    assert report.documents_deleted == 1
    assert report.vectors_deleted == 0  # archiving took the vector already
    assert await rows(pool) == {}


async def test_a_dry_run_counts_and_changes_nothing(memory: MemoryService, pool: AsyncConnectionPool) -> None:
    ids = await aged_set(memory)
    before = await rows(pool)

    report = await Retention(pool, memory=memory).apply(POLICY, dry_run=True)

    assert report.dry_run
    assert (report.documents_archived, report.documents_deleted, report.vectors_deleted) == (2, 2, 4)
    assert await rows(pool) == before
    assert await vector_ids(memory) == set(ids.values())


async def test_without_the_store_the_holder_deletes_the_vectors(
    memory: MemoryService, pool: AsyncConnectionPool, tmp_path: Path
) -> None:
    """A CLI while the worker holds the embedded store: Postgres now, the vectors by the holder."""
    ids = await aged_set(memory)
    detached = _service(pool, tmp_path / "unused")
    detached.open_detached("held by the worker")

    report = await Retention(pool, memory=detached).apply(POLICY)

    assert (report.vectors_deleted, report.vectors_pending) == (0, 4)
    assert await tombstone_count(pool) == 4
    assert await memory.sync(force=True) == (0, 4)
    assert await vector_ids(memory) == {ids["young note"], ids["young secret"], ids["kept old"]}
    assert await tombstone_count(pool) == 0


async def test_the_workflow_and_its_schedule_on_the_dev_server(
    memory: MemoryService,
    pool: AsyncConnectionPool,
    stack_settings: Settings,
    temporal_client: Client,
    task_queue: str,
) -> None:
    ids = await aged_set(memory)
    async with httpx.AsyncClient() as http:
        deps = ActivityDeps(settings=stack_settings, pool=pool, http=http)
        activities = RetentionActivities(deps, memory)
        async with Worker(
            temporal_client,
            task_queue=task_queue,
            workflows=[RetentionWorkflow],
            activities=[activities.apply],
        ):
            dry = await _execute(temporal_client, task_queue, RetentionRequest(policy=POLICY, dry_run=True))
            assert (dry.documents_archived, dry.documents_deleted) == (2, 2)
            assert await rows(pool) == {memory_id: False for memory_id in ids.values()}

            # Scheduled, as it runs daily; the pass it starts applies the policy it carries.
            name = f"retention-test-{task_queue}"
            handle = await create_retention_schedule(
                temporal_client, task_queue=task_queue, request=RetentionRequest(policy=POLICY), schedule=name
            )
            try:
                described = await handle.describe()
                assert [i.every for i in described.schedule.spec.intervals] == [timedelta(days=1)]
                await handle.trigger()
                workflow_id = await _first_action(handle)
                report = await asyncio.wait_for(
                    temporal_client.get_workflow_handle(workflow_id, result_type=RetentionReport).result(),
                    timeout=60,
                )
                # Creating it again replaces it (a changed interval), rather than failing.
                again = await create_retention_schedule(
                    temporal_client, task_queue=task_queue, every=timedelta(hours=6), schedule=name
                )
                intervals = (await again.describe()).schedule.spec.intervals
                assert [i.every for i in intervals] == [timedelta(hours=6)]
            finally:
                await handle.delete()
    assert (report.documents_archived, report.documents_deleted, report.vectors_deleted) == (2, 2, 4)
    assert len(await rows(pool)) == 5


async def _execute(client: Client, task_queue: str, request: RetentionRequest) -> RetentionReport:
    return await asyncio.wait_for(
        client.execute_workflow(
            RetentionWorkflow.run, request, id=f"retention-test-{uuid.uuid4().hex[:8]}", task_queue=task_queue
        ),
        timeout=60,
    )


async def _first_action(handle: ScheduleHandle) -> str:
    for _ in range(100):
        for action in (await handle.describe()).info.recent_actions:
            if isinstance(action.action, ScheduleActionExecutionStartWorkflow):
                return action.action.workflow_id
        await asyncio.sleep(0.2)
    raise AssertionError("the triggered schedule started no workflow")


# -- runs in Temporal ---------------------------------------------------------------------------


async def eventually(
    check: Callable[[], Awaitable[T]], done: Callable[[T], bool], *, within: float = 120
) -> T:
    """Poll `check` until `done` holds. Temporal's visibility trails its executions a little, and
    the server carries a deletion out in its queues after the call returns: 4 to 35 s measured on
    the shared dev server while other suites ran."""
    deadline = asyncio.get_running_loop().time() + within
    while True:
        value = await check()
        if done(value) or asyncio.get_running_loop().time() > deadline:
            return value
        await asyncio.sleep(0.25)


async def in_temporal(client: Client, workflow_id: str) -> bool:
    try:
        await client.get_workflow_handle(workflow_id).describe()
    except RPCError as error:
        if error.status == RPCStatusCode.NOT_FOUND:
            return False
        raise
    return True


async def listed(client: Client, workflow_id: str) -> bool:
    """Whether visibility (what the Web UI and `aios runs` read) still lists the workflow."""
    async for _ in client.list_workflows(f"WorkflowId = '{workflow_id}'"):
        return True
    return False


async def mirror_status(database_url: str, run_id: str) -> str | None:
    async with await psycopg.AsyncConnection.connect(database_url) as conn:
        cursor = await conn.execute("SELECT status FROM aios_runs WHERE run_id = %s", (run_id,))
        row = await cursor.fetchone()
    return str(row[0]) if row else None


async def stored_payloads(database_url: str, workflow_id: str) -> int:
    async with await psycopg.AsyncConnection.connect(database_url) as conn:
        cursor = await conn.execute(
            "SELECT count(*) FROM aios_payload_owners WHERE owner_kind = 'workflow' AND owner_id = %s",
            (workflow_id,),
        )
        row = await cursor.fetchone()
    return int(row[0]) if row else 0


async def finished_run(client: AiosClient, agent: str, task: dict[str, object]) -> str:
    manifest = noop_manifest(1, name=agent)
    started = await client.start_run(agent, task, manifest=manifest)
    assert (await client.result(started.run_id)).status is RunStatus.COMPLETED
    url = client.settings.resolved_database_url
    assert await eventually(lambda: mirror_status(url, started.run_id), lambda s: s == "completed")
    return started.run_id


async def test_finished_runs_past_the_limit_leave_temporal_and_the_mirror(
    aios_client: AiosClient, temporal_client: Client, database_url: str
) -> None:
    # Rules name this test's agents: the dev server and database are shared with other tests.
    old_enough, too_young = unique_agent("ret"), unique_agent("ret")
    # Over the offload threshold: the run's input and result live in the payload store.
    gone = await finished_run(aios_client, old_enough, {"note": "a", "attachment": "x" * 100_000})
    assert await stored_payloads(database_url, gone) >= 1
    kept = await finished_run(aios_client, too_young, {"note": "b"})
    policy = RetentionPolicy(
        runs=[RunRetentionRule(agent=old_enough, keep_days=0), RunRetentionRule(agent=too_young, keep_days=1)]
    )

    async with AsyncConnectionPool(database_url, min_size=1, max_size=2, kwargs={"autocommit": True}) as pool:
        retention = Retention(pool, runs=TemporalRuns(temporal_client, pool=pool))
        # The run's close reaches visibility a moment after the run ends.
        dry = await eventually(lambda: retention.apply(policy, dry_run=True), lambda r: r.runs_deleted == 1)
        assert (dry.runs_deleted, dry.run_mirrors_deleted) == (1, 1)
        assert await in_temporal(temporal_client, gone)
        report = await retention.apply(policy)

    assert [(o.runs, o.mirrors) for o in report.run_rules] == [(1, 1), (0, 0)]
    assert report.executions_deleted >= 1
    assert not await eventually(lambda: in_temporal(temporal_client, gone), lambda found: not found)
    assert not await eventually(lambda: listed(temporal_client, gone), lambda found: not found)
    assert await mirror_status(database_url, gone) is None
    assert await stored_payloads(database_url, gone) == 0, "its large payloads went with its history"
    assert await in_temporal(temporal_client, kept)
    assert await mirror_status(database_url, kept) == "completed"


SUBJECT_DOCUMENTS = "SELECT count(*) FROM aios_memories WHERE subject = %s"


async def test_forget_removes_a_subject_everywhere_but_keeps_runs_still_going(
    aios_client: AiosClient,
    temporal_client: Client,
    database_url: str,
    effect_server: EffectServer,
    tmp_path: Path,
) -> None:
    subject, agent = f"c-{uuid.uuid4().hex[:8]}", unique_agent("forget")
    finished = await finished_run(aios_client, agent, {"customer": subject})
    waiting_manifest = refund_like_manifest(effect_server.url, name=agent)
    waiting = (
        await aios_client.start_run(agent, {"customer": subject, "amount": 250}, manifest=waiting_manifest)
    ).run_id
    await wait_for_status(aios_client, waiting, RunStatus.WAITING_APPROVAL)
    assert await eventually(lambda: mirror_status(database_url, waiting), lambda s: s is not None)
    other = await finished_run(aios_client, agent, {"customer": f"{subject}-not"})

    async with AsyncConnectionPool(database_url, min_size=1, max_size=2, kwargs={"autocommit": True}) as pool:
        memory = _service(pool, tmp_path / "shard")
        await memory.open()
        try:
            remembered = [
                await remember_aged(memory, agent=agent, kind="note", days_old=0, subject=subject)
                for _ in range(2)
            ]
            assert set(remembered) <= await vector_ids(memory)
            # The two notes, and the outcome the finished run remembered as it ended.
            async with pool.connection() as conn:
                cursor = await conn.execute(SUBJECT_DOCUMENTS, (subject,))
                documents_before = await cursor.fetchone()
            assert documents_before == (3,)
            report = await memory.forget(ForgetRequest(subject=subject), runs=TemporalRuns(temporal_client))
            left_in_store = await vector_ids(memory)
        finally:
            await memory.close()
        async with pool.connection() as conn:
            cursor = await conn.execute(SUBJECT_DOCUMENTS, (subject,))
            documents_left = await cursor.fetchone()

    assert report.documents == 3 and report.vectors + report.vectors_pending == 3
    assert (report.run_mirrors, report.runs_still_going, report.temporal_checked) == (1, 1, True)
    assert report.executions >= 1
    assert "still going" in report.note
    assert documents_left == (0,)
    assert not set(remembered) & left_in_store
    assert not await eventually(lambda: in_temporal(temporal_client, finished), lambda found: not found)
    assert not await eventually(lambda: listed(temporal_client, finished), lambda found: not found)
    assert await mirror_status(database_url, finished) is None
    # The run still going is untouched everywhere; another subject's run too.
    assert await mirror_status(database_url, waiting) == "waiting_approval"
    assert (await aios_client.state(waiting)).status is RunStatus.WAITING_APPROVAL
    assert await in_temporal(temporal_client, other)
    assert await mirror_status(database_url, other) == "completed"
