"""Workflows remember and recall through the memory activities, across a worker restart.

The workflow here is the test's own (the agent run's wiring is not part of this module);
it builds its inputs deterministically: the key from its workflow id, `as_of` from
`workflow.now()`.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import timedelta
from pathlib import Path

from psycopg_pool import AsyncConnectionPool
from temporalio import workflow
from temporalio.client import Client
from temporalio.worker import UnsandboxedWorkflowRunner, Worker

from activities.deps import ActivityDeps
from activities.memory import MemoryActivities
from aios.memory.embedders import HashEmbedder
from aios.memory.messages import MemoryFilter, MemoryRecallRequest, MemoryRecallResult, RememberRequest
from aios.memory.service import MemoryService
from aios.memory.vectors import EdgeStore
from aios.settings import Settings
from aios.store.migrate import migrate

TIMEOUT = timedelta(seconds=30)


@workflow.defn(name="MemoryProbe")
class MemoryProbe:
    @workflow.run
    async def run(self, note: str) -> MemoryRecallResult:
        if note:
            await workflow.execute_activity_method(
                MemoryActivities.remember,
                RememberRequest(
                    key=f"{workflow.info().workflow_id}/1",
                    agent="desk",
                    text=note,
                    subject="acme",
                    source_run=workflow.info().workflow_id,
                ),
                start_to_close_timeout=TIMEOUT,
            )
        return await workflow.execute_activity_method(
            MemoryActivities.recall,
            MemoryRecallRequest(
                query="how does acme pay", filter=MemoryFilter(agent="desk"), as_of=workflow.now()
            ),
            start_to_close_timeout=TIMEOUT,
        )


@asynccontextmanager
async def memory_worker(
    client: Client, queue: str, pool: AsyncConnectionPool, directory: Path, settings: Settings
) -> AsyncIterator[None]:
    """A worker process's lifetime: open the store, serve, close (releasing the store)."""
    service = MemoryService(
        pool=pool, embedder=HashEmbedder(), store_factory=lambda _n, d: EdgeStore(directory, d)
    )
    await service.open()
    activities = MemoryActivities(ActivityDeps(settings=settings, pool=pool, http=None), service)  # type: ignore[arg-type]
    worker = Worker(
        client,
        task_queue=queue,
        workflows=[MemoryProbe],
        activities=[activities.remember, activities.recall],
        workflow_runner=UnsandboxedWorkflowRunner(),
    )
    try:
        async with worker:
            yield
    finally:
        await service.close()


async def test_recall_across_runs_and_a_worker_restart(
    temporal_client: Client, task_queue: str, scratch_database: str, stack_settings: Settings, tmp_path: Path
) -> None:
    await migrate(scratch_database)
    directory = tmp_path / "shard"
    async with AsyncConnectionPool(
        scratch_database, min_size=1, max_size=4, kwargs={"autocommit": True}
    ) as pool:
        async with memory_worker(temporal_client, task_queue, pool, directory, stack_settings):
            first = await temporal_client.execute_workflow(
                MemoryProbe.run, "acme pays by card", id=f"{task_queue}-first", task_queue=task_queue
            )
        assert first.memories[-1].endswith("acme pays by card")

        async with memory_worker(temporal_client, task_queue, pool, directory, stack_settings):
            second = await temporal_client.execute_workflow(
                MemoryProbe.run, "", id=f"{task_queue}-second", task_queue=task_queue
            )
    assert [item.text for item in second.items] == ["acme pays by card"]
    assert second.items[0].source_run == f"{task_queue}-first"
