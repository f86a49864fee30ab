"""Building the memory service from settings: which store, where, and with which embedder."""

from __future__ import annotations

import logging
from pathlib import Path

from psycopg_pool import AsyncConnectionPool

from aios.memory.embedders import Embedder, EmbedderUnavailable, choose_embedder
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


async def open_memory(settings: Settings, pool: AsyncConnectionPool) -> tuple[MemoryService | None, str]:
    """A worker's memory, opened before it polls (building the HNSW index holds the GIL).

    Returns (service, "") when memory works; (service, reason) when another process holds the
    embedded store: documents are still written, for that process to index, and recall says
    why it left long-term memory out; (None, reason) when no embedder is installed or configured.
    """
    try:
        service = build_service(settings, pool)
    except EmbedderUnavailable as exc:
        log.warning("long-term memory is off: %s", exc)
        return None, str(exc)
    try:
        await service.open()
    except StoreBusy as exc:
        log.warning("long-term memory is detached: %s", exc)
        service.open_detached(str(exc))
        return service, str(exc)
    return service, ""
