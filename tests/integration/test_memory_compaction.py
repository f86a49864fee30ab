"""Memory compaction over real Postgres, an embedded Qdrant Edge shard in a temp directory, the
test embedder (hash: equal words match) and, for the workflow, the real Temporal dev server."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest
from psycopg_pool import AsyncConnectionPool
from temporalio.client import Client
from temporalio.worker import Worker

from activities.compaction import CompactionActivities
from activities.deps import ActivityDeps
from aios.errors import CompactionNotFound
from aios.memory.compaction import (
    COMPACTED_TAG,
    OFFLINE_LABEL,
    SUMMARY_KIND,
    CommitRequest,
    CompactionRequest,
    CompactionResult,
    Compactor,
)
from aios.memory.embedders import HashEmbedder
from aios.memory.messages import MemoryFilter, MemoryRecallRequest, RememberRequest, Scoring
from aios.memory.service import MemoryService
from aios.memory.vectors import EdgeStore
from aios.settings import Settings
from workflows.compaction import CompactionWorkflow, create_compaction_schedule

EVERYTHING = Scoring(min_similarity=-1)
ACME = [
    "Acme pays invoices by card.",
    "Acme's billing contact is Dana Reyes.",
    "Acme renewed the annual plan in March. Acme pays invoices by card.",
]


@pytest.fixture
async def memory(pool: AsyncConnectionPool, tmp_path: Path) -> AsyncIterator[MemoryService]:
    service = MemoryService(
        pool=pool,
        embedder=HashEmbedder(),
        store_factory=lambda _name, dimension: EdgeStore(tmp_path / "shard", dimension),
    )
    await service.open()
    yield service
    await service.close()


async def remember_all(memory: MemoryService, texts: list[str], subject: str = "acme") -> list[str]:
    ids = []
    for n, text in enumerate(texts):
        result = await memory.remember(
            RememberRequest(
                key=f"{subject}/{n}", agent="desk", text=text, subject=subject, importance=0.3 + n / 10
            )
        )
        ids.append(result.memory_id)
    return ids


async def recalled(memory: MemoryService, query: str, subject: str = "acme") -> list[tuple[str, str]]:
    result = await memory.recall(
        MemoryRecallRequest(
            query=query, filter=MemoryFilter(agent="desk", subject=subject), scoring=EVERYTHING, top_k=20
        )
    )
    return [(item.memory_id, item.kind) for item in result.items]


async def compact(compactor: Compactor, request: CompactionRequest) -> CompactionResult:
    """The workflow's steps, in order, without Temporal."""
    sources = await compactor.candidates(request, datetime.now(UTC))
    summary = await compactor.summarise(request, sources)
    report = await compactor.check(sources, summary.text, request.threshold)
    return await compactor.commit(
        CommitRequest(
            compaction_id=str(uuid.uuid4()),
            request=request,
            sources=sources,
            summary=summary,
            fidelity=report,
        )
    )


async def archived_rows(pool: AsyncConnectionPool) -> dict[str, str | None]:
    async with pool.connection() as conn:
        cursor = await conn.execute("SELECT memory_id::text, compaction_id::text FROM aios_memories")
        return {row[0]: row[1] for row in await cursor.fetchall()}


async def test_a_faithful_summary_archives_the_originals_and_recall_returns_it(
    memory: MemoryService, pool: AsyncConnectionPool
) -> None:
    originals = await remember_all(memory, ACME)
    compactor = Compactor(memory)
    result = await compact(compactor, CompactionRequest(agent="desk", subject="acme", older_than_days=0))

    assert result.status == "archived"
    assert sorted(result.sources) == sorted(originals)
    assert all(score.passed and score.similarity > 0.99 for score in result.scores)
    assert result.summary_id is not None
    assert await recalled(memory, "how does acme pay invoices") == [(result.summary_id, SUMMARY_KIND)]

    async with pool.connection() as conn:
        cursor = await conn.execute(
            "SELECT text, tags, importance FROM aios_memories WHERE memory_id = %s", (result.summary_id,)
        )
        text, tags, importance = await cursor.fetchone() or ("", [], 0.0)
        cursor = await conn.execute(
            "SELECT status, cardinality(source_ids), summary_id::text, jsonb_array_length(scores) "
            "FROM aios_memory_compactions WHERE compaction_id = %s",
            (result.compaction_id,),
        )
        record = await cursor.fetchone()
    assert text.startswith(OFFLINE_LABEL)
    assert text.count("Acme pays invoices by card.") == 1  # deduplicated
    assert COMPACTED_TAG in tags
    assert importance == pytest.approx(0.5)  # the highest of the sources
    assert record == ("archived", 3, result.summary_id, 3)
    rows = await archived_rows(pool)
    assert all(rows[memory_id] == result.compaction_id for memory_id in originals)

    again = await compactor.get(result.compaction_id)
    assert again is not None and again.status == "archived"
    # A second pass finds only the summary: nothing left to compact.
    left = await compactor.candidates(
        CompactionRequest(agent="desk", subject="acme", older_than_days=0), datetime.now(UTC)
    )
    assert [source.memory_id for source in left] == [result.summary_id]


async def test_a_failed_check_keeps_the_originals_and_records_the_scores(
    memory: MemoryService, pool: AsyncConnectionPool
) -> None:
    originals = await remember_all(
        memory, ["acme pays invoices by card", "the warehouse roof leaks in winter"]
    )
    compactor = Compactor(memory)
    # The summary keeps one sentence: the other source is not retrievable from it.
    request = CompactionRequest(agent="desk", subject="acme", older_than_days=0, max_summary_sentences=1)
    result = await compact(compactor, request)

    assert result.status == "failed_check"
    assert result.summary_id is None
    by_id = {score.memory_id: score for score in result.scores}
    assert by_id[originals[0]].passed
    assert not by_id[originals[1]].passed and by_id[originals[1]].similarity < 0.6
    assert sorted(m for m, _ in await recalled(memory, "acme invoices warehouse roof")) == sorted(originals)
    assert set((await archived_rows(pool)).values()) == {None}
    async with pool.connection() as conn:
        cursor = await conn.execute(
            "SELECT status, summary_id, scores FROM aios_memory_compactions WHERE compaction_id = %s",
            (result.compaction_id,),
        )
        status, summary_id, scores = await cursor.fetchone() or ("", "", [])
    assert (status, summary_id) == ("failed_check", None)
    assert {score["memory_id"]: score["passed"] for score in scores} == {
        originals[0]: True,
        originals[1]: False,
    }


async def test_a_threshold_no_summary_can_meet_keeps_everything(memory: MemoryService) -> None:
    originals = await remember_all(memory, ACME)
    result = await compact(
        Compactor(memory), CompactionRequest(agent="desk", subject="acme", older_than_days=0, threshold=1.01)
    )
    assert result.status == "failed_check"
    assert not any(score.passed for score in result.scores)
    assert sorted(m for m, _ in await recalled(memory, "acme invoices")) == sorted(originals)


async def test_undo_restores_the_originals_and_deletes_the_summary(
    memory: MemoryService, pool: AsyncConnectionPool
) -> None:
    originals = await remember_all(memory, ACME)
    compactor = Compactor(memory)
    result = await compact(compactor, CompactionRequest(agent="desk", subject="acme", older_than_days=0))
    assert result.status == "archived"

    undone = await compactor.undo(result.compaction_id)
    assert (undone.restored, undone.summary_deleted) == (3, True)
    assert sorted(m for m, _ in await recalled(memory, "how does acme pay invoices")) == sorted(originals)
    rows = await archived_rows(pool)
    assert sorted(rows) == sorted(originals) and set(rows.values()) == {None}
    again = await compactor.undo(result.compaction_id)
    assert again.restored == 0 and "undone" in again.note
    with pytest.raises(CompactionNotFound):
        await compactor.undo(str(uuid.uuid4()))


async def test_too_few_old_memories_are_left_alone(memory: MemoryService) -> None:
    await remember_all(memory, ACME)
    sources = await Compactor(memory).candidates(
        CompactionRequest(agent="desk", subject="acme", older_than_days=1), datetime.now(UTC)
    )
    assert sources == []


async def test_the_workflow_and_its_schedule_on_the_dev_server(
    memory: MemoryService,
    pool: AsyncConnectionPool,
    stack_settings: Settings,
    temporal_client: Client,
    task_queue: str,
) -> None:
    await remember_all(memory, ACME)
    await remember_all(memory, ["globex ships on fridays", "globex ships from rotterdam"], subject="globex")
    async with httpx.AsyncClient() as http:
        deps = ActivityDeps(settings=stack_settings, pool=pool, http=http)
        activities = CompactionActivities(deps, memory)
        async with Worker(
            temporal_client,
            task_queue=task_queue,
            workflows=[CompactionWorkflow],
            activities=[
                activities.candidates,
                activities.summarise,
                activities.check,
                activities.commit,
                activities.undo,
            ],
        ):
            result = await asyncio.wait_for(
                temporal_client.execute_workflow(
                    CompactionWorkflow.run,
                    CompactionRequest(agent="desk", subject="acme", older_than_days=0),
                    id=f"compaction-test-{uuid.uuid4().hex[:8]}",
                    task_queue=task_queue,
                ),
                timeout=60,
            )
            assert result.status == "archived"
            assert await recalled(memory, "how does acme pay invoices") == [(result.summary_id, SUMMARY_KIND)]

            request = CompactionRequest(agent="desk", subject="globex", older_than_days=0)
            handle = await create_compaction_schedule(
                temporal_client, request, task_queue=task_queue, schedule=f"compaction-test-{task_queue}"
            )
            try:
                described = await handle.describe()
                intervals = described.schedule.spec.intervals
                assert [interval.every for interval in intervals] == [timedelta(days=1)]
                await handle.trigger()
                workflow_id = await _first_action(handle)
                scheduled = await asyncio.wait_for(
                    temporal_client.get_workflow_handle(workflow_id, result_type=CompactionResult).result(),
                    timeout=60,
                )
            finally:
                await handle.delete()
    assert scheduled.status == "archived"
    assert [kind for _, kind in await recalled(memory, "globex ships", subject="globex")] == [SUMMARY_KIND]


async def _first_action(handle: object) -> str:
    from temporalio.client import ScheduleActionExecutionStartWorkflow, ScheduleHandle

    assert isinstance(handle, ScheduleHandle)
    for _ in range(100):
        actions = (await handle.describe()).info.recent_actions
        for action in actions:
            if isinstance(action.action, ScheduleActionExecutionStartWorkflow):
                return action.action.workflow_id
        await asyncio.sleep(0.2)
    raise AssertionError("the triggered schedule started no workflow")


async def test_a_reindex_does_not_bring_archived_memories_back(memory: MemoryService) -> None:
    originals = await remember_all(memory, ACME)
    result = await compact(
        Compactor(memory), CompactionRequest(agent="desk", subject="acme", older_than_days=0)
    )
    assert result.status == "archived"
    await memory.reindex()
    found = [memory_id for memory_id, _ in await recalled(memory, "how does acme pay invoices")]
    assert found == [result.summary_id]
    assert not set(found) & set(originals)
