"""`aios memory` commands while another process (a worker) holds the embedded store."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from psycopg_pool import AsyncConnectionPool
from typer.testing import CliRunner

from aios.cli.memory import app
from aios.memory.compaction import CommitRequest, CompactionRequest, Compactor
from aios.memory.factory import build_service
from aios.memory.messages import RememberRequest
from aios.memory.service import MemoryService
from aios.settings import load_settings
from aios.store.migrate import migrate

runner = CliRunner()


@pytest.fixture
def memory_env(scratch_database: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.setenv("AIOS_DATABASE_URL", scratch_database)
    monkeypatch.setenv("AIOS_QDRANT_PATH", str(tmp_path / "qdrant"))
    monkeypatch.setenv("AIOS_MEMORY_EMBEDDER", "hash")  # plumbing: the model is not what is tested
    monkeypatch.setenv("AIOS_TRACE_FILE", str(tmp_path / "spans.jsonl"))
    yield


@pytest.fixture
async def worker_memory(memory_env: None, scratch_database: str) -> AsyncIterator[MemoryService]:
    """What a worker holds: the embedded store, opened for writing."""
    await migrate(scratch_database)
    async with AsyncConnectionPool(
        scratch_database, min_size=1, max_size=2, kwargs={"autocommit": True}
    ) as pool:
        service = build_service(load_settings(), pool)
        await service.open()
        await service.remember(
            RememberRequest(key="1", agent="desk", text="acme pays by card", subject="acme")
        )
        await service.remember(
            RememberRequest(key="2", agent="desk", text="globex pays late", subject="globex")
        )
        yield service
        await service.close()


def flat(output: str) -> str:
    """The output with rich's line wrapping undone (it wraps at 80 columns: paths move the breaks)."""
    return " ".join(output.split())


def invoke(*args: str) -> tuple[int, str]:
    # The CLI runs its own event loop (asyncio.run), so it runs in a thread beside the test's loop.
    result = runner.invoke(app, list(args))
    return result.exit_code, result.output


async def test_search_falls_back_to_postgres_while_the_store_is_held(worker_memory: MemoryService) -> None:
    code, output = await asyncio.to_thread(invoke, "search", "acme card", "--agent", "desk", "--json")
    assert code == 0, output
    assert "Searching Postgres's copy" in flat(output)
    payload = json.loads(output[output.index("{") :])
    assert payload["items"][0]["text"] == "acme pays by card"


async def test_forget_while_held_leaves_the_vectors_to_the_holder(worker_memory: MemoryService) -> None:
    code, output = await asyncio.to_thread(invoke, "forget", "--subject", "acme", "--json")
    assert code == 0, output
    report = json.loads(output[output.index("{") :])
    assert (report["documents"], report["vectors"], report["vectors_pending"]) == (1, 0, 1)
    assert await worker_memory.sync(force=True) == (0, 1)
    assert worker_memory.store is not None and worker_memory.store.count() == 1


async def test_remember_while_held_is_indexed_by_the_holder(worker_memory: MemoryService) -> None:
    code, output = await asyncio.to_thread(
        invoke, "remember", "initech patches on sundays", "--agent", "desk"
    )
    assert code == 0, output
    assert "pending" in output
    assert await worker_memory.sync(force=True) == (1, 0)


async def test_reindex_refuses_while_held_and_says_why(worker_memory: MemoryService) -> None:
    code, output = await asyncio.to_thread(invoke, "reindex")
    assert code == 1
    assert "needs it to itself" in flat(output)
    assert "AIOS_QDRANT_URL" in output


async def test_info_names_the_holder_and_the_embedder(worker_memory: MemoryService) -> None:
    code, output = await asyncio.to_thread(invoke, "info")
    assert code == 0, output
    assert "held by pid" in flat(output)
    assert "TEST ONLY" in output


async def test_commands_with_the_store_free(worker_memory: MemoryService) -> None:
    await worker_memory.close()
    code, output = await asyncio.to_thread(invoke, "reindex")
    assert code == 0, output
    assert json.loads(output[output.index("{") :])["documents"] == 2
    code, output = await asyncio.to_thread(invoke, "forget", "--subject", "globex")
    assert code == 0, output
    assert "1 vectors deleted from Qdrant" in output


# -- compactions, retention ------------------------------------------------------------------


async def _compact_acme(service: MemoryService) -> str:
    """A compaction of acme's memories, made as the workflow makes it (its steps, in order)."""
    await service.remember(RememberRequest(key="3", agent="desk", text="acme ships by post", subject="acme"))
    compactor = Compactor(service)
    request = CompactionRequest(agent="desk", subject="acme", older_than_days=0)
    sources = await compactor.candidates(request, datetime.now(UTC))
    summary = await compactor.summarise(request, sources)
    result = await compactor.commit(
        CommitRequest(
            compaction_id=str(uuid.uuid4()),
            request=request,
            sources=sources,
            summary=summary,
            fidelity=await compactor.check(sources, summary.text, request.threshold),
        )
    )
    assert result.status == "archived"
    return result.compaction_id


async def _archived(service: MemoryService) -> dict[str, bool]:
    async with service.pool.connection() as conn:
        cursor = await conn.execute(
            "SELECT text, archived_at IS NOT NULL FROM aios_memories WHERE subject = 'acme'"
        )
        return {row[0]: row[1] for row in await cursor.fetchall()}


async def test_compactions_are_listed_and_undone_while_the_store_is_held(
    worker_memory: MemoryService,
) -> None:
    compaction_id = await _compact_acme(worker_memory)

    code, output = await asyncio.to_thread(invoke, "compactions", "--subject", "acme", "--json")
    assert code == 0, output
    [listed] = json.loads(output[output.index("[") :])
    assert (listed["compaction_id"], listed["status"], listed["sources"]) == (compaction_id, "archived", 2)
    assert listed["fidelity"] >= listed["threshold"]
    code, output = await asyncio.to_thread(invoke, "compactions")
    assert code == 0, output
    assert "1 compactions" in output and "archived" in output and "acme" in output

    code, output = await asyncio.to_thread(invoke, "undo-compaction", compaction_id)
    assert code == 0, output
    assert "2 memories restored, summary deleted" in output
    assert await _archived(worker_memory) == {"acme pays by card": False, "acme ships by post": False}
    assert await worker_memory.sync(force=True) == (2, 1)  # the holder re-indexes them, drops the summary

    code, output = await asyncio.to_thread(invoke, "compactions", "--subject", "acme", "--json")
    assert json.loads(output[output.index("[") :])[0]["status"] == "undone"
    code, output = await asyncio.to_thread(invoke, "undo-compaction", compaction_id)
    assert code == 0 and "nothing to undo" in output and "undone" in output


async def test_undo_of_an_unknown_compaction_says_so(worker_memory: MemoryService) -> None:
    unknown = str(uuid.uuid4())
    code, output = await asyncio.to_thread(invoke, "undo-compaction", unknown)
    assert code == 1
    assert f"no compaction '{unknown}': `aios memory compactions` lists them" in flat(output)
    code, output = await asyncio.to_thread(invoke, "undo-compaction", "not-an-id")
    assert code == 2
    assert "no compaction 'not-an-id'" in output


async def test_retention_from_the_cli_while_the_store_is_held(
    worker_memory: MemoryService, monkeypatch: pytest.MonkeyPatch
) -> None:
    policy = {
        "memories": [{"agent": "desk", "subject": None, "kind": "note", "keep_days": 30, "then": "delete"}]
    }
    monkeypatch.setenv("AIOS_RETENTION", json.dumps(policy))
    code, output = await asyncio.to_thread(invoke, "retention", "--dry-run")
    assert code == 2  # `subject` is not a field of a rule
    assert "AIOS_RETENTION: memories[0].subject" in output

    del policy["memories"][0]["subject"]
    monkeypatch.setenv("AIOS_RETENTION", json.dumps(policy))
    async with worker_memory.pool.connection() as conn:
        await conn.execute(
            "UPDATE aios_memories SET created_at = now() - interval '40 days' WHERE subject = 'acme'"
        )

    code, output = await asyncio.to_thread(invoke, "retention", "--dry-run", "--json")
    assert code == 0, output
    totals = json.loads(output[output.index("{") :])["totals"]
    assert totals["memory documents deleted"] == 1
    assert await _archived(worker_memory) == {"acme pays by card": False}

    code, output = await asyncio.to_thread(invoke, "retention")
    assert code == 0, output
    assert "memory documents deleted" in output and "memories[0]: agent=desk kind=note" in output
    assert await _archived(worker_memory) == {}
    assert await worker_memory.sync(force=True) == (0, 1)  # the holder drops the vector
    assert worker_memory.store is not None and worker_memory.store.count() == 1


async def test_forget_names_every_store(worker_memory: MemoryService) -> None:
    code, output = await asyncio.to_thread(invoke, "forget", "--subject", "acme")
    assert code == 0, output
    assert "1 memory documents, 0 run mirrors, 0 compaction summaries and 0 cached model answers" in output
    assert "0 executions deleted from Temporal" in output
    code, output = await asyncio.to_thread(invoke, "forget", "--subject", "globex", "--keep-runs")
    assert code == 0, output
    assert "Temporal left alone (--keep-runs)" in output
