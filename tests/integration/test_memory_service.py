"""Long-term memory over real Postgres and an embedded Qdrant Edge shard in a temp directory.

The plumbing tests use the test embedder (hash: equal words match); the semantic test uses the
real model and is skipped, saying how to install it, where it is missing.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from psycopg.types.json import Jsonb
from psycopg_pool import AsyncConnectionPool
from temporalio.testing import ActivityEnvironment

from activities.deps import ActivityDeps
from activities.memory import MemoryActivities
from aios.memory import minilm
from aios.memory.embedders import Embedder, HashEmbedder, MiniLMEmbedder
from aios.memory.messages import (
    ForgetRequest,
    MemoryFilter,
    MemoryRecallRequest,
    RememberRequest,
    Scoring,
)
from aios.memory.service import MemoryService
from aios.memory.vectors import EdgeStore
from aios.settings import Settings

Opener = Callable[..., Awaitable[MemoryService]]
EVERYTHING = Scoring(min_similarity=-1)


@pytest.fixture
async def open_memory(pool: AsyncConnectionPool, tmp_path: Path) -> AsyncIterator[Opener]:
    """Opens services on one shard directory, as successive worker processes would; closes them all."""
    opened: list[MemoryService] = []

    async def make(embedder: Embedder | None = None, *, detached: bool = False) -> MemoryService:
        service = MemoryService(
            pool=pool,
            embedder=embedder or HashEmbedder(),
            store_factory=lambda _name, dimension: EdgeStore(tmp_path / "shard", dimension),
        )
        if detached:
            service.open_detached("held by the test's other service")
        else:
            await service.open()
        opened.append(service)
        return service

    yield make
    for service in reversed(opened):
        await service.close()


def note(key: str, text: str, **fields: object) -> RememberRequest:
    return RememberRequest.model_validate({"key": key, "agent": "desk", "text": text, **fields})


async def texts(service: MemoryService, query: str, **filters: object) -> list[str]:
    wanted = MemoryFilter.model_validate({"agent": "desk", **filters})
    result = await service.recall(MemoryRecallRequest(query=query, filter=wanted, scoring=EVERYTHING))
    return [item.text for item in result.items]


async def test_remember_then_recall_across_runs_and_a_restart(open_memory: Opener) -> None:
    first_run = await open_memory()
    await first_run.remember(
        note("run-1/1", "acme pays invoices by card", subject="acme", source_run="run-1")
    )
    assert await texts(first_run, "how does acme pay invoices") == ["acme pays invoices by card"]
    await first_run.close()

    after_restart = await open_memory()  # a new process opening the same shard and database
    assert await texts(after_restart, "how does acme pay invoices") == ["acme pays invoices by card"]
    result = await after_restart.recall(
        MemoryRecallRequest(query="acme card", filter=MemoryFilter(agent="desk"))
    )
    assert result.items[0].source_run == "run-1"


async def test_remember_is_idempotent_and_updates_in_place(
    open_memory: Opener, pool: AsyncConnectionPool
) -> None:
    service = await open_memory()
    first = await service.remember(note("k", "acme likes email"))
    again = await service.remember(note("k", "acme likes email"))
    changed = await service.remember(note("k", "acme likes phone calls"))
    assert (first.created, again.created, again.changed, changed.changed) == (True, False, False, True)
    assert first.memory_id == again.memory_id == changed.memory_id
    async with pool.connection() as conn:
        rows = await (await conn.execute("SELECT text FROM aios_memories")).fetchall()
    assert rows == [("acme likes phone calls",)]
    assert service.store is not None and service.store.count() == 1
    assert await texts(service, "acme email phone") == ["acme likes phone calls"]


async def test_filters(open_memory: Opener) -> None:
    service = await open_memory()
    await service.remember(note("1", "acme invoice paid late", subject="acme", kind="fact", tags=["billing"]))
    await service.remember(note("2", "acme invoice disputed", subject="acme", kind="outcome"))
    await service.remember(note("3", "invoice policy net 30", kind="fact", tags=["billing"]))
    await service.remember(
        RememberRequest(key="4", agent="other", text="acme invoice from another agent", subject="acme")
    )
    query = "acme invoice"
    assert set(await texts(service, query)) == {
        "acme invoice paid late",
        "acme invoice disputed",
        "invoice policy net 30",
    }
    assert set(await texts(service, query, subject="acme")) == {
        "acme invoice paid late",
        "acme invoice disputed",
    }
    assert len(await texts(service, query, subject="acme", include_general=True)) == 3
    assert set(await texts(service, query, kinds=["fact"])) == {
        "acme invoice paid late",
        "invoice policy net 30",
    }
    assert set(await texts(service, query, tags=["billing"], subject="acme")) == {"acme invoice paid late"}
    future = datetime.now(UTC) + timedelta(days=1)
    assert await texts(service, query, since=future) == []
    assert len(await texts(service, query, until=future)) == 3


async def test_the_token_budget_is_respected(open_memory: Opener) -> None:
    service = await open_memory()
    for index in range(12):
        await service.remember(note(f"k{index}", f"acme order {index} " + "detail " * 20))
    for budget in (1, 40, 100, 1000):
        result = await service.recall(
            MemoryRecallRequest(
                query="acme order",
                filter=MemoryFilter(agent="desk"),
                top_k=10,
                token_budget=budget,
                scoring=EVERYTHING,
            )
        )
        assert result.tokens == sum(item.tokens for item in result.items) <= budget
        assert len(result.memories) == len(result.items) <= 10
    assert len(result.items) == 10  # the largest budget is limited by top_k, not by tokens


async def test_reindex_rebuilds_an_emptied_collection(open_memory: Opener, tmp_path: Path) -> None:
    service = await open_memory()
    for index in range(30):
        await service.remember(note(f"k{index}", f"fact number {index} about acme"))
    assert service.store is not None
    service.store.clear()  # the collection is lost (a deleted directory, a wiped server)
    assert await texts(service, "fact number 7") == []
    report = await service.reindex()
    assert (report.documents, report.vectors, report.reembedded) == (30, 30, 0)
    assert (await texts(service, "fact number 7 about acme"))[0] == "fact number 7 about acme"


async def test_reindex_re_embeds_rows_of_another_model(open_memory: Opener, tmp_path: Path) -> None:
    first = await open_memory(HashEmbedder(size=384))
    await first.remember(note("k", "acme pays by card"))
    await first.close()

    class OtherHash(HashEmbedder):
        name = "hash-test-other"

    second = await open_memory(OtherHash())
    report = await second.reindex()
    assert report.reembedded == 1
    assert await texts(second, "acme card") == ["acme pays by card"]


async def test_a_pending_document_is_indexed_by_the_owner(open_memory: Opener, tmp_path: Path) -> None:
    owner = await open_memory()
    detached = await open_memory(detached=True)  # e.g. a CLI while the worker holds the store
    result = await detached.remember(note("k", "written while the store was busy"))
    assert not result.indexed
    assert await owner.sync(force=True) == (1, 0)
    assert await texts(owner, "written while the store was busy") == ["written while the store was busy"]


async def test_forget_removes_a_subject_everywhere(open_memory: Opener, pool: AsyncConnectionPool) -> None:
    service = await open_memory()
    await service.remember(note("1", "acme secret one", subject="acme"))
    await service.remember(note("2", "acme secret two", subject="acme"))
    await service.remember(note("3", "globex stays", subject="globex"))
    async with pool.connection() as conn:
        for run_id, status in (("r-done", "completed"), ("r-live", "running")):
            await conn.execute(
                "INSERT INTO aios_runs (run_id, agent, manifest_version, mode, status, task, state)"
                " VALUES (%s, 'desk', 'v1', 'live', %s, %s, '{}')",
                (run_id, status, Jsonb({"subject": "acme"})),
            )
    report = await service.forget(ForgetRequest(subject="acme"))
    assert (report.documents, report.vectors, report.vectors_pending, report.run_mirrors) == (2, 2, 0, 1)
    assert "still going" in report.note
    assert service.store is not None and service.store.count() == 1
    assert await texts(service, "acme secret") == ["globex stays"]
    async with pool.connection() as conn:
        left = await (await conn.execute("SELECT subject FROM aios_memories")).fetchall()
        runs = await (await conn.execute("SELECT run_id FROM aios_runs")).fetchall()
    assert left == [("globex",)]
    assert runs == [("r-live",)]


async def test_forget_while_another_process_holds_the_store(
    open_memory: Opener, pool: AsyncConnectionPool
) -> None:
    owner = await open_memory()
    await owner.remember(note("1", "acme secret", subject="acme"))
    cli = await open_memory(detached=True)
    report = await cli.forget(ForgetRequest(subject="acme"))
    assert (report.documents, report.vectors, report.vectors_pending) == (1, 0, 1)
    assert await owner.sync(force=True) == (0, 1)  # the vector follows on the owner's next sync
    assert await texts(owner, "acme secret") == []
    assert owner.store is not None and owner.store.count() == 0
    async with pool.connection() as conn:
        assert await (await conn.execute("SELECT count(*) FROM aios_memory_tombstones")).fetchone() == (0,)


async def test_recall_activity_adds_run_history_within_the_budget(
    open_memory: Opener, pool: AsyncConnectionPool, stack_settings: Settings
) -> None:
    service = await open_memory()
    await service.remember(note("1", "acme wants refunds to their card", subject="acme"))
    async with pool.connection() as conn:
        await conn.execute(
            "INSERT INTO aios_runs (run_id, agent, manifest_version, mode, status, task, state)"
            " VALUES ('r-old', 'desk', 'v1', 'live', 'completed', %s, %s)",
            (
                Jsonb({"customer": "acme"}),
                Jsonb({"steps": [{"step": 1, "action": "refund", "status": "executed"}]}),
            ),
        )
    deps = ActivityDeps(settings=stack_settings, pool=pool, http=None)  # type: ignore[arg-type]
    activities = MemoryActivities(deps, service)
    request = MemoryRecallRequest.for_task(
        agent="desk",
        task={"customer": "acme", "query": "acme refunds card"},
        top_k=5,
        token_budget=1500,
        as_of=datetime.now(UTC),
        run_id="r-new",
    )
    result = await ActivityEnvironment().run(activities.recall, request)
    assert result.run_history == 1
    assert result.memories[0].endswith("acme wants refunds to their card")
    assert "run r-old (completed) did: refund" in result.memories[1]
    tight = await ActivityEnvironment().run(
        activities.recall, request.model_copy(update={"token_budget": 15})
    )
    assert tight.tokens <= 15 and tight.run_history == 0


@pytest.mark.skipif(not minilm.available(), reason=minilm.INSTALL_HINT)
async def test_semantic_recall_with_the_real_model(open_memory: Opener) -> None:
    service = await open_memory(MiniLMEmbedder())
    await service.remember(note("1", "Acme prefers to be contacted by email.", subject="acme"))
    await service.remember(note("2", "Acme's warehouse is in Rotterdam.", subject="acme"))
    result = await service.recall(
        MemoryRecallRequest(
            query="How should we reach the customer?", filter=MemoryFilter(agent="desk"), top_k=1
        )
    )
    assert [item.text for item in result.items] == ["Acme prefers to be contacted by email."]
    assert result.items[0].similarity > Scoring().min_similarity
