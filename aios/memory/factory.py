"""Building the memory service from settings: which store, where, and with which embedder."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

from psycopg_pool import AsyncConnectionPool

from aios.memory.embedders import Embedder, EmbedderUnavailable, choose_embedder
from aios.memory.holder import MemoryHolder, holder_queue
from aios.memory.service import MemoryService, StoreFactory
from aios.memory.vectors import EdgeStore, QdrantClientStore, StoreBusy, VectorStore, collection_name
from aios.settings import Settings

log = logging.getLogger("aios.memory")


def store_factory(settings: Settings) -> StoreFactory:
    """A server when AIOS_QDRANT_URL is set; else Qdrant Edge (or local mode) under the data dir."""

    def make(embedder: str, dimension: int) -> VectorStore:
        collection = collection_name(settings.memory_collection, embedder)
        if settings.qdrant_url is not None:
            return QdrantClientStore(collection=collection, dimension=dimension, url=settings.qdrant_url)
        if settings.memory_store == "local":
            return QdrantClientStore(
                collection=collection, dimension=dimension, path=settings.resolved_qdrant_path / "local"
            )
        return EdgeStore(settings.resolved_qdrant_path / "edge" / collection, dimension)

    return make


def lock_file(settings: Settings, embedder: str) -> Path | None:
    """The lock file of the embedded store this process would open (None for a server)."""
    if settings.qdrant_url is not None:
        return None
    if settings.memory_store == "local":
        return settings.resolved_qdrant_path / "local.lock"
    return (
        settings.resolved_qdrant_path
        / "edge"
        / f"{collection_name(settings.memory_collection, embedder)}.lock"
    )


def build_service(
    settings: Settings, pool: AsyncConnectionPool, *, embedder: Embedder | None = None
) -> MemoryService:
    """Not opened yet: call `open` (owner), `open_exhaustive` (reader) or `open_detached`."""
    return MemoryService(
        pool=pool,
        embedder=embedder or choose_embedder(settings),
        store_factory=store_factory(settings),
        cache_seconds=settings.memory_cache_seconds,
        query_cache_size=settings.memory_query_cache_size,
    )


@dataclass
class WorkerMemory:
    """A worker's long-term memory: the service, why it is limited, and its part in the holding."""

    service: MemoryService | None = None
    unavailable: str = ""
    queue: str | None = None
    """The memory task queue: served by the holder (embedded store) or by every worker (server)."""
    holder: MemoryHolder | None = None
    """The election, with an embedded store; None with a Qdrant server or without memory."""


async def open_memory(settings: Settings, pool: AsyncConnectionPool, *, elect: bool = True) -> WorkerMemory:
    """A worker's memory, opened before it polls (building the HNSW index holds the GIL).

    With a Qdrant server every worker opens it. With an embedded store the worker that wins the
    election holds it; the others write documents for the holder to index and ask the holder to
    recall, and take the store over when the holder goes (aios/memory/holder.py). Without an
    embedder memory is off and `unavailable` says why. Without `elect` (not a worker: it serves
    no memory queue) the store is opened only if its files are free, else detached.
    """
    try:
        service = build_service(settings, pool)
    except EmbedderUnavailable as exc:
        log.warning("long-term memory is off: %s", exc)
        return WorkerMemory(unavailable=str(exc))
    store = collection_name(settings.memory_collection, service.embedder.name)
    queue = holder_queue(store)
    if settings.qdrant_url is not None:
        await service.open()
        return WorkerMemory(service, queue=queue)
    if not elect:
        return await _open_unelected(service, queue)
    place = str(settings.resolved_qdrant_path.resolve())
    holder = MemoryHolder(service, settings.resolved_database_url, store, place)
    if await holder.try_take():
        return WorkerMemory(service, queue=queue, holder=holder)
    reason = detached_reason(store)
    log.info("long-term memory: %s", reason)
    service.open_detached(reason)
    return WorkerMemory(service, reason, queue=queue, holder=holder)


async def _open_unelected(service: MemoryService, queue: str) -> WorkerMemory:
    try:
        await service.open()
    except StoreBusy as busy:
        log.warning("long-term memory is detached: %s", busy)
        service.open_detached(str(busy))
        return WorkerMemory(service, str(busy), queue=queue)
    return WorkerMemory(service, queue=queue)


def detached_reason(store: str) -> str:
    return f"another worker holds the memory store {store}; this one asks it through Temporal"
