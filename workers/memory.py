"""The memory task queue: served by every worker with a Qdrant server, by the holder otherwise.

With an embedded store one worker holds it (aios/memory/holder.py) and serves `memory/<store>`,
where the other workers' runs ask it to recall. A worker that does not hold the store tries to
take it over every few seconds, so a holder that dies (its Postgres lock goes with its
connection) is replaced without anyone's help; a holder that loses its lock (Postgres restarted)
stops serving and competes again. docs/ARCHITECTURE.md, "Several workers, one memory".
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from datetime import timedelta

from temporalio.client import Client
from temporalio.worker import Worker

from activities.deps import ActivityDeps
from activities.memory import MemoryActivities
from aios.memory.factory import detached_reason
from aios.memory.holder import MemoryHolder

log = logging.getLogger("aios.worker")
SHUTDOWN_GRACE = timedelta(seconds=10)


class MemoryQueue:
    def __init__(self, client: Client, deps: ActivityDeps, every: float) -> None:
        self._client = client
        self._deps = deps
        self._every = every

    def _worker(self, queue: str) -> Worker:
        memory = MemoryActivities(self._deps, self._deps.memory, self._deps.memory_unavailable)
        return Worker(
            self._client,
            task_queue=queue,
            activities=[memory.recall, memory.remember],
            graceful_shutdown_timeout=SHUTDOWN_GRACE,
        )

    async def serve(self, stop: asyncio.Event) -> None:
        """Until `stop`: serve the queue whenever this worker may."""
        queue, holder = self._deps.memory_queue, self._deps.memory_holder
        if self._deps.memory is None or queue is None:
            return
        if holder is None:  # a Qdrant server: every worker can answer
            async with self._worker(queue):
                await stop.wait()
            return
        while not stop.is_set():
            if holder.holding:
                log.info("holding the memory store %s: serving %s", holder.store, queue)
                async with self._worker(queue):
                    await self._while_holding(holder, stop)
                if not stop.is_set():
                    log.warning("lost the memory store %s; competing for it again", holder.store)
                    await holder.give_back(detached_reason(holder.store))
            elif not await self._try_take(holder):
                await _wait(stop, self._every)

    async def _while_holding(self, holder: MemoryHolder, stop: asyncio.Event) -> None:
        while not stop.is_set() and await holder.still_holding():
            await _wait(stop, self._every)

    async def _try_take(self, holder: MemoryHolder) -> bool:
        try:
            return await holder.try_take()
        except Exception:  # Postgres away for a moment: the next round tries again
            log.warning("could not compete for the memory store %s", holder.store, exc_info=True)
            return False


async def _wait(stop: asyncio.Event, seconds: float) -> None:
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(stop.wait(), seconds)
