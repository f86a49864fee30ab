"""`aios memory` commands while another process (a worker) holds the embedded store."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
from psycopg_pool import AsyncConnectionPool
from typer.testing import CliRunner

from aios.cli.memory import app
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


def invoke(*args: str) -> tuple[int, str]:
    # The CLI runs its own event loop (asyncio.run), so it runs in a thread beside the test's loop.
    result = runner.invoke(app, list(args))
    return result.exit_code, result.output


async def test_search_falls_back_to_postgres_while_the_store_is_held(worker_memory: MemoryService) -> None:
    code, output = await asyncio.to_thread(invoke, "search", "acme card", "--agent", "desk", "--json")
    assert code == 0, output
    assert "Searching Postgres's copy" in output
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
    assert "needs it to itself" in output
    assert "AIOS_QDRANT_URL" in output


async def test_info_names_the_holder_and_the_embedder(worker_memory: MemoryService) -> None:
    code, output = await asyncio.to_thread(invoke, "info")
    assert code == 0, output
    assert "held by pid" in output
    assert "TEST ONLY" in output


async def test_commands_with_the_store_free(worker_memory: MemoryService) -> None:
    await worker_memory.close()
    code, output = await asyncio.to_thread(invoke, "reindex")
    assert code == 0, output
    assert json.loads(output[output.index("{") :])["documents"] == 2
    code, output = await asyncio.to_thread(invoke, "forget", "--subject", "globex")
    assert code == 0, output
    assert "1 vectors deleted from Qdrant" in output
