"""A worker running in the test's own process, on the test's own queue, and a client for it."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

from temporalio.client import Client
from temporalio.service import RPCError

from aios.client import AiosClient
from aios.settings import Settings
from workers.main import run_worker


@contextlib.asynccontextmanager
async def client_with_worker(settings: Settings, temporal_client: Client) -> AsyncIterator[AiosClient]:
    stop = asyncio.Event()
    queue = settings.task_queue
    worker = asyncio.create_task(run_worker(settings, stop=stop, task_queue=queue))
    try:
        yield AiosClient(temporal_client, settings)
        await terminate_leftovers(temporal_client, queue)
    finally:
        stop.set()
        await worker


async def terminate_leftovers(client: Client, task_queue: str) -> None:
    """Runs a test left waiting (paused, queued) would otherwise pile up in the dev server."""
    query = f"TaskQueue = '{task_queue}' AND ExecutionStatus = 'Running'"
    async for execution in client.list_workflows(query):
        with contextlib.suppress(RPCError):  # it may have finished since visibility listed it
            await client.get_workflow_handle(execution.id).terminate("test finished")
