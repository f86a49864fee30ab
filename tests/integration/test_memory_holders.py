"""Several workers, one memory: three `aios worker` processes share an embedded store.

Each worker has a store directory of its own (as on three machines); one holds the store and
serves the memory queue, the others ask it through Temporal. The holder is SIGKILLed while
runs are going: another worker takes over (rebuilding its index from Postgres), and every run
on every worker recalls what the earlier runs remembered: nothing lost, nothing twice.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
from pydantic import SecretStr
from temporalio.api.enums.v1 import EventType
from temporalio.client import Client

from aios.client import AiosClient
from aios.memory.embedders import choose_embedder
from aios.memory.holder import holder_queue
from aios.memory.vectors import collection_name
from aios.models.run import RunState, RunStatus
from aios.settings import Settings
from aios.store.migrate import migrate
from tests.faults.support import WorkerProcess
from tests.support.manifests import noop_manifest

pytestmark = pytest.mark.integration
WORKERS = 3
CUSTOMERS = 6


class MemoryWorker(WorkerProcess):
    """A worker with a store directory of its own, as on a machine of its own."""

    def __init__(self, settings: Settings, store_dir: Path) -> None:
        self.store_dir = store_dir
        overrides = {
            "AIOS_MEMORY_COLLECTION": settings.memory_collection,
            "AIOS_QDRANT_PATH": str(store_dir),
            "AIOS_MEMORY_TAKEOVER_SECONDS": "0.5",
        }
        # its log beside its store: read it when the test fails
        super().__init__(settings.task_queue, store_dir.with_suffix(".log"), settings, overrides)


@pytest.fixture
async def shared(stack_settings: Settings, task_queue: str, scratch_database: str) -> Settings:
    """The test's own queue, memory collection and database: its store and its election are its
    own, and a takeover rebuilds the index from this test's documents alone (in the suite's
    database it copied every other test's too, thousands, which likely outlasted the recall's
    wait in CI: a run then went on with its run history only)."""
    await migrate(scratch_database)
    return stack_settings.model_copy(
        update={
            "task_queue": task_queue,
            "memory_collection": f"holders_{uuid.uuid4().hex[:8]}",
            "database_url": SecretStr(scratch_database),
        }
    )


@pytest.fixture
def workers() -> Iterator[list[MemoryWorker]]:
    started: list[MemoryWorker] = []
    yield started
    for worker in started:
        worker.stop()


async def _holder_place(settings: Settings, store: str) -> str | None:
    async with await psycopg.AsyncConnection.connect(settings.resolved_database_url) as conn:
        cursor = await conn.execute("SELECT place FROM aios_memory_holders WHERE store = %s", (store,))
        row = await cursor.fetchone()
    return None if row is None else str(row[0])


async def _wait_for_holder(settings: Settings, store: str, candidates: list[MemoryWorker]) -> MemoryWorker:
    for _ in range(600):
        place = await _holder_place(settings, store)
        for worker in candidates:
            if place is not None and place.endswith(f":{worker.store_dir.resolve()}"):
                return worker
        await asyncio.sleep(0.1)
    raise AssertionError(f"no worker took the memory store {store}")


async def _remembered(settings: Settings, run_id: str) -> list[str]:
    async with await psycopg.AsyncConnection.connect(settings.resolved_database_url) as conn:
        cursor = await conn.execute("SELECT text FROM aios_memories WHERE source_run = %s", (run_id,))
        return [str(row[0]) for row in await cursor.fetchall()]


async def _runs(client: AiosClient, agent: str, customers: list[str]) -> list[RunState]:
    manifest = noop_manifest(2, name=agent)
    started = [await client.start_run(agent, {"customer": c}, manifest=manifest) for c in customers]
    return list(
        await asyncio.gather(*(asyncio.wait_for(client.result(s.run_id), timeout=120) for s in started))
    )


async def _asked_the_holder(temporal: Client, run_id: str, queue: str) -> bool:
    async for event in temporal.get_workflow_handle(run_id).fetch_history_events():
        scheduled = event.activity_task_scheduled_event_attributes
        if (
            event.event_type == EventType.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED
            and scheduled.task_queue.name == queue
        ):
            return True
    return False


async def test_three_workers_share_one_memory_through_a_holder_killed_mid_run(
    shared: Settings, temporal_client: Client, workers: list[MemoryWorker], tmp_path: Path
) -> None:
    client = AiosClient(temporal_client, shared)
    agent = f"holders-{uuid.uuid4().hex[:6]}"
    # The worker processes choose the embedder the suite's settings choose.
    store = collection_name(shared.memory_collection, choose_embedder(shared).name)
    workers.append(MemoryWorker(shared, tmp_path / "w0"))
    first_holder = await _wait_for_holder(shared, store, workers)
    workers.extend(MemoryWorker(shared, tmp_path / f"w{i}") for i in range(1, WORKERS))

    customers = [f"c-hold-{i}-{uuid.uuid4().hex[:6]}" for i in range(CUSTOMERS)]
    firsts = await _runs(client, agent, customers)
    assert all(run.status is RunStatus.COMPLETED for run in firsts), [r.outcome for r in firsts]

    # The second round starts, and the holder dies under it.
    second_round = asyncio.create_task(_runs(client, agent, customers))
    await asyncio.sleep(0.5)
    first_holder.kill()
    seconds = await second_round
    new_holder = await _wait_for_holder(shared, store, [w for w in workers if w is not first_holder])

    for first, second in zip(firsts, seconds, strict=True):
        assert second.status is RunStatus.COMPLETED, second.outcome
        [outcome] = await _remembered(shared, first.run_id)  # written once
        assert any(outcome in line for line in second.recalled), (second.run_id, second.recalled)
        assert len(await _remembered(shared, second.run_id)) == 1
    asked = [await _asked_the_holder(temporal_client, r.run_id, holder_queue(store)) for r in seconds]
    assert any(asked), "no run asked the holder: every recall ran on the holder itself"
    assert new_holder.process.poll() is None
