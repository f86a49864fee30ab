"""Vector stores behind one interface: Qdrant Edge (embedded default), qdrant-client, a server.

Embedded stores belong to one process at a time. Each is opened under an exclusive lock file
that names its holder, so the second opener gets `StoreBusy` saying who holds it (the engines'
own locks would only say "WouldBlock"). docs/MEMORY.md explains the choice of Edge with figures.

Store methods are synchronous; `MemoryService` calls them from one thread of its own, which
also serialises them (Edge's calls hold the GIL, so more threads would not run them faster).
"""

from __future__ import annotations

import fcntl
import os
import re
import shutil
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any, Protocol

import numpy as np
import numpy.typing as npt

from aios.errors import AiosError
from aios.memory.messages import MemoryFilter

Vector = npt.NDArray[np.float32]
PAYLOAD_KEYWORDS = ("agent", "subject", "kind", "tags")


class StoreBusy(AiosError):
    """An embedded store is open in another process (a worker, usually)."""


class StoreError(AiosError):
    """The vector store refused an operation; the message says which and why."""


@dataclass(frozen=True)
class Point:
    memory_id: str
    vector: Vector
    payload: dict[str, Any]


@dataclass(frozen=True)
class Hit:
    memory_id: str
    similarity: float


class VectorStore(Protocol):
    description: str
    dimension: int

    def upsert(self, points: list[Point]) -> None: ...
    def delete(self, ids: list[str]) -> None: ...
    def search(self, vector: Vector, wanted: MemoryFilter, limit: int) -> list[Hit]: ...
    def count(self) -> int: ...
    def unindexed(self) -> int: ...
    def optimize(self) -> None: ...
    def clear(self) -> None: ...
    def close(self) -> None: ...


def collection_name(prefix: str, embedder: str) -> str:
    """One collection per embedder: vectors of two models never mix; switching needs a reindex."""
    return f"{prefix}__{re.sub(r'[^a-z0-9]+', '_', embedder.lower()).strip('_')}"


class OwnerLock:
    """An exclusive flock on a file that records who holds it (pid and command)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        path.parent.mkdir(parents=True, exist_ok=True)
        handle: IO[str] = open(path, "a+")  # noqa: SIM115  (held open for the lock's lifetime)
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.seek(0)
            holder = handle.read().strip() or "another process"
            handle.close()
            raise StoreBusy(
                f"the embedded memory store {path.with_suffix('')} is open in {holder}; an embedded "
                "store serves one process at a time. Stop that process, or set AIOS_QDRANT_URL to a "
                "Qdrant server that several processes share"
            ) from None
        handle.seek(0)
        handle.truncate()
        handle.write(f"pid {os.getpid()} ({' '.join(sys.argv[:3])[:200]})")
        handle.flush()
        self._handle = handle

    def release(self) -> None:
        if not self._handle.closed:
            fcntl.flock(self._handle, fcntl.LOCK_UN)
            self._handle.close()


def holder(lock_path: Path) -> str | None:
    """Who holds an embedded store's lock now, or None when it is free (a probe, not a lock)."""
    if not lock_path.exists():
        return None
    with open(lock_path, "a+") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.seek(0)
            return handle.read().strip() or "another process"
        fcntl.flock(handle, fcntl.LOCK_UN)
    return None


class EdgeStore:
    """Qdrant Edge: Qdrant's segments (HNSW, payload indexes, WAL) in this process.

    New points land in an appendable segment that is searched exhaustively; `optimize` builds
    the HNSW index over them. Edge's optimize holds the GIL for its whole run (7 s at 20k
    points, ~50 s at 100k here), so the service runs it only when it opens the store (worker
    start-up) and on reindex, never while a worker serves activities.
    """

    def __init__(self, directory: Path, dimension: int) -> None:
        import qdrant_edge as edge

        self._edge = edge
        self.dimension = dimension
        self.description = f"Qdrant Edge (embedded) at {directory}"
        self._directory = directory
        self._lock = OwnerLock(directory.with_suffix(".lock"))
        try:
            self._shard = self._open()
        except BaseException:
            self._lock.release()
            raise

    def _open(self) -> Any:
        edge = self._edge
        if (self._directory / "edge_config.json").exists():
            return edge.EdgeShard.load(str(self._directory))
        config = edge.EdgeConfig(
            vectors=edge.EdgeVectorParams(size=self.dimension, distance=edge.Distance.Cosine)
        )
        shard = edge.EdgeShard.create(str(self._directory), config)
        for field in PAYLOAD_KEYWORDS:
            shard.update(edge.UpdateOperation.create_field_index(field, edge.PayloadSchemaType.Keyword))
        shard.update(edge.UpdateOperation.create_field_index("created", edge.PayloadSchemaType.Float))
        return shard

    def upsert(self, points: list[Point]) -> None:
        if points:
            converted = [self._edge.Point(p.memory_id, p.vector.tolist(), p.payload) for p in points]
            self._shard.update(self._edge.UpdateOperation.upsert_points(converted))

    def delete(self, ids: list[str]) -> None:
        if ids:
            self._shard.update(self._edge.UpdateOperation.delete_points(list[Any](ids)))

    def search(self, vector: Vector, wanted: MemoryFilter, limit: int) -> list[Hit]:
        edge = self._edge
        request = edge.QueryRequest(
            limit=limit,
            query=edge.Query.Nearest(vector.tolist()),
            filter=_edge_filter(edge, wanted),
            with_payload=False,
        )
        return [Hit(str(point.id), float(point.score)) for point in self._shard.query(request)]

    def count(self) -> int:
        return int(self._shard.info().points_count)

    def unindexed(self) -> int:
        info = self._shard.info()
        return max(0, int(info.points_count) - int(info.indexed_vectors_count))

    def optimize(self) -> None:
        self._shard.optimize()

    def clear(self) -> None:
        self._shard.close()
        shutil.rmtree(self._directory, ignore_errors=True)
        self._shard = self._open()

    def close(self) -> None:
        try:
            self._shard.flush()
            self._shard.close()
        finally:
            self._lock.release()


def _edge_filter(edge: Any, wanted: MemoryFilter) -> Any:
    must: list[Any] = []
    if wanted.agent is not None:
        must.append(edge.FieldCondition("agent", match=edge.MatchValue(wanted.agent)))
    if wanted.subject is not None:
        subjects = [wanted.subject, ""] if wanted.include_general else [wanted.subject]
        must.append(edge.FieldCondition("subject", match=edge.MatchAny(subjects)))
    if wanted.kinds:
        must.append(edge.FieldCondition("kind", match=edge.MatchAny(list(wanted.kinds))))
    if wanted.tags:
        must.append(edge.FieldCondition("tags", match=edge.MatchAny(list(wanted.tags))))
    if wanted.since is not None or wanted.until is not None:
        since = wanted.since.timestamp() if wanted.since else None
        until = wanted.until.timestamp() if wanted.until else None
        must.append(edge.FieldCondition("created", range=edge.RangeFloat(gte=since, lte=until)))
    return edge.Filter(must=must) if must else None


class QdrantClientStore:
    """qdrant-client: a Qdrant server by URL, or its local mode (brute force, for comparison)."""

    def __init__(
        self, *, collection: str, dimension: int, url: str | None = None, path: Path | None = None
    ) -> None:
        """`url`: a server; `path`: local mode on disk; neither: local mode in memory (benchmarks)."""
        from qdrant_client import QdrantClient

        self.dimension = dimension
        self._collection = collection
        self._server = url is not None
        self._lock = OwnerLock(path.with_suffix(".lock")) if path is not None else None
        try:
            if url is not None:
                self._client = QdrantClient(url=url)
                self.description = f"Qdrant server at {url}, collection {collection}"
            else:
                self._client = QdrantClient(path=str(path)) if path else QdrantClient(location=":memory:")
                self.description = f"qdrant-client local mode (embedded, brute force) at {path or 'memory'}"
            self._ensure()
        except BaseException:
            if self._lock is not None:
                self._lock.release()
            raise

    def _ensure(self) -> None:
        from qdrant_client import models

        if self._client.collection_exists(self._collection):
            return
        self._client.create_collection(
            self._collection,
            vectors_config=models.VectorParams(size=self.dimension, distance=models.Distance.COSINE),
        )
        if not self._server:
            return  # local mode has no payload indexes (it warns when asked for one)
        for field in PAYLOAD_KEYWORDS:
            self._client.create_payload_index(self._collection, field, models.PayloadSchemaType.KEYWORD)
        self._client.create_payload_index(self._collection, "created", models.PayloadSchemaType.FLOAT)

    def upsert(self, points: list[Point]) -> None:
        from qdrant_client import models

        if points:
            self._client.upsert(
                self._collection,
                [
                    models.PointStruct(id=p.memory_id, vector=p.vector.tolist(), payload=p.payload)
                    for p in points
                ],
            )

    def delete(self, ids: list[str]) -> None:
        from qdrant_client import models

        if ids:
            self._client.delete(self._collection, models.PointIdsList(points=list(ids)))

    def search(self, vector: Vector, wanted: MemoryFilter, limit: int) -> list[Hit]:
        response = self._client.query_points(
            self._collection, query=vector.tolist(), query_filter=_client_filter(wanted), limit=limit
        )
        return [Hit(str(point.id), float(point.score)) for point in response.points]

    def count(self) -> int:
        return int(self._client.count(self._collection, exact=True).count)

    def unindexed(self) -> int:
        return 0  # a server indexes in the background; local mode never indexes

    def optimize(self) -> None:
        return None

    def clear(self) -> None:
        self._client.delete_collection(self._collection)
        self._ensure()

    def close(self) -> None:
        try:
            self._client.close()
        finally:
            if self._lock is not None:
                self._lock.release()


def _client_filter(wanted: MemoryFilter) -> Any:
    from qdrant_client import models

    must: list[Any] = []
    if wanted.agent is not None:
        must.append(models.FieldCondition(key="agent", match=models.MatchValue(value=wanted.agent)))
    if wanted.subject is not None:
        subjects = [wanted.subject, ""] if wanted.include_general else [wanted.subject]
        must.append(models.FieldCondition(key="subject", match=models.MatchAny(any=subjects)))
    if wanted.kinds:
        must.append(models.FieldCondition(key="kind", match=models.MatchAny(any=list(wanted.kinds))))
    if wanted.tags:
        must.append(models.FieldCondition(key="tags", match=models.MatchAny(any=list(wanted.tags))))
    if wanted.since is not None or wanted.until is not None:
        since = wanted.since.timestamp() if wanted.since else None
        until = wanted.until.timestamp() if wanted.until else None
        must.append(models.FieldCondition(key="created", range=models.Range(gte=since, lte=until)))
    return models.Filter(must=must) if must else None


class ExhaustiveStore:
    """Exact search over vectors held in memory (numpy); used over Postgres's copy of the vectors
    when the embedded store is busy (a CLI while a worker runs). Read-only in spirit: writes only
    change this process's copy."""

    def __init__(self, dimension: int, points: list[tuple[Point, MemoryFilterable]]) -> None:
        self.dimension = dimension
        self.description = "exhaustive search over Postgres's copy of the vectors"
        # Cosine similarity as a dot product: rows are normalised once, here.
        self._points = [(_normalised(point), filterable) for point, filterable in points]

    def upsert(self, points: list[Point]) -> None:
        raise StoreError("the exhaustive search over Postgres is read-only")

    def delete(self, ids: list[str]) -> None:
        gone = set(ids)
        self._points = [item for item in self._points if item[0].memory_id not in gone]

    def search(self, vector: Vector, wanted: MemoryFilter, limit: int) -> list[Hit]:
        chosen = [point for point, filterable in self._points if filterable.matches(wanted)]
        if not chosen:
            return []
        matrix = np.stack([point.vector for point in chosen])
        query = vector.astype(np.float32) / (float(np.linalg.norm(vector)) or 1.0)
        scores = matrix @ query
        order = np.argsort(-scores)[:limit]
        return [Hit(chosen[i].memory_id, float(scores[i])) for i in order]

    def count(self) -> int:
        return len(self._points)

    def unindexed(self) -> int:
        return 0

    def optimize(self) -> None:
        return None

    def clear(self) -> None:
        raise StoreError("the exhaustive search over Postgres is read-only")

    def close(self) -> None:
        self._points = []


def _normalised(point: Point) -> Point:
    norm = float(np.linalg.norm(point.vector)) or 1.0
    return Point(point.memory_id, (point.vector / norm).astype(np.float32), point.payload)


class MemoryFilterable(Protocol):
    def matches(self, wanted: MemoryFilter) -> bool: ...
