"""Long-term memory: remember, recall, forget, reindex, over Postgres (truth) and a vector store.

Writes go document first, then vector, both idempotent. The document is written with
`indexed = false` and its vector; the vector then goes to the store and the row is marked
indexed. A crash between the two, or a write made by a worker without the store, leaves a
pending row, which the store's owner finishes on its next sync (before every read, and at most
once a second before a write). A forget made where the store could not be opened (a CLI
while a worker holds the embedded store) deletes the documents and leaves tombstones, which
the owner's next sync applies. Recall fetches the documents of the vectors it found, so a
forgotten memory is never returned, even before its vector is gone.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Protocol, TypeVar

import numpy as np
from psycopg import AsyncConnection
from psycopg_pool import AsyncConnectionPool

from aios.governance.subjects import SubjectVault
from aios.ledger import model_cache
from aios.memory import documents
from aios.memory.documents import Document, Vector
from aios.memory.embedders import Embedder, QueryCache
from aios.memory.messages import (
    ForgetReport,
    ForgetRequest,
    MemoryRecallRequest,
    MemoryRecallResult,
    RememberRequest,
    RememberResult,
)
from aios.memory.scoring import Candidate, pack, rank, render
from aios.memory.vectors import ExhaustiveStore, Hit, Point, StoreBusy, VectorStore

T = TypeVar("T")
SYNC_EVERY_SECONDS = 1.0
SYNC_BATCH = 500
REINDEX_BATCH = 512
CANDIDATES_PER_RESULT = 4  # re-ranking by recency and importance needs more than top_k to choose from
MIN_CANDIDATES = 20
CATCH_UP_WAIT_SECONDS = 20.0

StoreFactory = Callable[[str, int], VectorStore]


@dataclass(frozen=True)
class ErasedRuns:
    """What became of a subject's runs in Temporal (aios.memory.retention.TemporalRuns)."""

    finished: list[str]  # no longer in Temporal (deleted now, or before): their mirrors may go
    running: list[str]  # still going: kept in Temporal and in the mirror
    executions: int  # executions deleted: the runs, earlier runs of their chains, their children


class RunEraser(Protocol):
    async def erase(self, run_ids: list[str]) -> ErasedRuns: ...


async def _delete_run_mirrors(
    conn: AsyncConnection[Any], request: ForgetRequest, include_runs: bool, erased: ErasedRuns | None
) -> tuple[int, int]:
    """(mirrors deleted, runs still going): by what Temporal said, else by the mirrors' status."""
    if not include_runs:
        return 0, 0
    if erased is None:
        return await documents.delete_subject_runs(conn, request.subject, request.agent)
    return await documents.delete_runs(conn, erased.finished), len(erased.running)


@dataclass
class ReindexReport:
    documents: int = 0
    reembedded: int = 0
    vectors: int = 0
    embed_seconds: float = 0.0
    upsert_seconds: float = 0.0
    index_seconds: float = 0.0


@dataclass
class _CachedSearch:
    expires: float
    hits: list[Hit]


@dataclass
class MemoryService:
    """One per process. `open` takes the vector store (and its lock, when embedded)."""

    pool: AsyncConnectionPool
    embedder: Embedder
    store_factory: StoreFactory
    cache_seconds: float = 30.0
    query_cache_size: int = 1024
    store: VectorStore | None = None
    queries: QueryCache = field(init=False)
    _executor: ThreadPoolExecutor = field(init=False)
    _searches: dict[tuple[str, str, int], _CachedSearch] = field(init=False, default_factory=dict)
    _synced_at: float = field(init=False, default=0.0)
    detached_reason: str | None = None

    def __post_init__(self) -> None:
        self.queries = QueryCache(self.embedder, self.query_cache_size)
        # Clear while a new holder rebuilds its index (aios/memory/holder.py): recall waits for it.
        self.caught_up = asyncio.Event()
        self.caught_up.set()
        # One thread: store calls are serialised, and never run on the event loop's thread.
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="aios-memory")

    async def _in_store(self, call: Callable[..., T], *args: Any) -> T:
        return await asyncio.get_running_loop().run_in_executor(self._executor, call, *args)

    @property
    def _store(self) -> VectorStore:
        if self.store is None:
            raise StoreBusy(self.detached_reason or "the memory store is not open (MemoryService.open)")
        return self.store

    @property
    def owns_store(self) -> bool:
        """True when this process writes vectors itself (not detached, not the exhaustive reader)."""
        return self.store is not None and not isinstance(self.store, ExhaustiveStore)

    async def open(self, *, optimize: bool = True) -> None:
        """Open the store, finish pending writes, and build the index over unindexed points.

        Building the index holds the GIL (Qdrant Edge), so a worker opens memory before it polls.
        """
        dimension = await self.embedder.dimension()
        self.store = await self._in_store(self.store_factory, self.embedder.name, dimension)
        await self.sync(force=True)
        if optimize:
            await self._in_store(self._store.optimize)

    def open_detached(self, reason: str) -> None:
        """No store (another process holds it): documents are written pending, for the owner to
        index; recall raises StoreBusy with `reason`."""
        self.store = None
        self.detached_reason = reason

    async def release_store(self, reason: str) -> None:
        """Close the store and go on detached (another worker may now take it over)."""
        if self.store is not None:
            await self._in_store(self.store.close)
        self.open_detached(reason)
        self._searches.clear()

    async def open_exhaustive(self) -> None:
        """No store: exact search over Postgres's vectors (a CLI while a worker holds the store)."""
        dimension = await self.embedder.dimension()
        points: list[tuple[Point, Document]] = []
        after = ""
        async with self.pool.connection() as conn:
            while rows := await documents.scan(conn, after=after, limit=REINDEX_BATCH * 4):
                points += [(Point(d.memory_id, v, {}), d) for d, v, e in rows if e == self.embedder.name]
                after = rows[-1][0].memory_id
        self.store = ExhaustiveStore(dimension, list(points))

    async def close(self) -> None:
        if self.store is not None:
            await self._in_store(self.store.close)
            self.store = None
        self._executor.shutdown(wait=True)

    # -- writes ---------------------------------------------------------------------------------

    async def remember(self, request: RememberRequest) -> RememberResult:
        await self.sync()
        tokens = documents.estimate_tokens(request.text)
        async with self.pool.connection() as conn:
            before = await documents.existing(conn, request.memory_id)
        same = (
            before is not None
            and before[0] == documents.content_hash(request)
            and before[1] == self.embedder.name
        )
        if same and before is not None and before[2]:
            return RememberResult(
                memory_id=request.memory_id, created=False, changed=False, tokens=tokens, indexed=True
            )
        vector = (await self.embedder.embed([request.text]))[0]
        async with self.pool.connection() as conn:
            created, changed = await documents.upsert(
                conn, request, embedder=self.embedder.name, vector=vector
            )
            fresh = await documents.fetch(conn, [request.memory_id])
        if self.owns_store:  # else the store's owner indexes the pending row on its next sync
            await self._index([(fresh[request.memory_id], vector)])
        return RememberResult(
            memory_id=request.memory_id,
            created=created,
            changed=changed,
            tokens=tokens,
            indexed=self.owns_store,
        )

    async def _index(self, rows: list[tuple[Document, np.typing.NDArray[np.float32]]]) -> None:
        points = [Point(doc.memory_id, vector, doc.payload()) for doc, vector in rows]
        await self._in_store(self._store.upsert, points)
        async with self.pool.connection() as conn:
            await documents.mark_indexed(conn, [p.memory_id for p in points], self.embedder.name)
        self._searches.clear()  # this worker's own writes show at once

    async def sync(self, *, force: bool = False) -> tuple[int, int]:
        """Finish pending vector writes and deletions; return how many of each were applied."""
        if not self.owns_store:
            return 0, 0
        now = time.monotonic()
        if not force and now - self._synced_at < SYNC_EVERY_SECONDS:
            return 0, 0
        self._synced_at = now
        async with self.pool.connection() as conn:
            waiting = await documents.pending(conn, self.embedder.name, SYNC_BATCH)
            doomed = await documents.tombstones(conn, SYNC_BATCH)
        if waiting:
            await self._index(waiting)
        if doomed:
            await self._in_store(self._store.delete, doomed)
            async with self.pool.connection() as conn:
                await documents.clear_tombstones(conn, doomed)
        return len(waiting), len(doomed)

    async def forget(
        self, request: ForgetRequest, *, include_runs: bool = True, runs: RunEraser | None = None
    ) -> ForgetReport:
        """Delete the subject's documents, then their vectors (now, or by the store's owner).

        Tombstones are written in the documents' transaction and cleared once the vectors are
        gone, so a crash in between leaves work for the next sync, never a stray vector. With
        `runs` (Temporal), the subject's finished runs leave Temporal first and their mirrors
        after, so a crash in between leaves mirrors that a second forget finds again; without
        it, the mirrors of runs that ended are deleted and Temporal is left alone.
        """
        erased = await runs.erase(await self._subject_runs(request)) if include_runs and runs else None
        async with self.pool.connection() as conn, conn.transaction():
            ids = await documents.delete_subject(conn, request.subject, request.agent)
            mirrors, live = await _delete_run_mirrors(conn, request, include_runs, erased)
            await documents.add_tombstones(conn, ids)
            compactions = await documents.delete_subject_compactions(conn, request.subject, request.agent)
            answers = await model_cache.forget_subject(conn, request.subject, request.agent)
            # What the runs recorded (audit, effects, webhook events) becomes unreadable.
            keys = await SubjectVault.forget(conn, request.subject, request.agent) if include_runs else 0
        deleted = await self.drop_vectors(ids)
        notes = []
        if live:
            notes.append(f"{live} run(s) of this subject still going were kept; forget again once they end")
        if deleted < len(ids):
            notes.append("the process holding the store deletes the vectors within a second")
        return ForgetReport(
            subject=request.subject,
            documents=len(ids),
            vectors=deleted,
            vectors_pending=len(ids) - deleted,
            run_mirrors=mirrors,
            note="; ".join(notes),
            temporal_checked=erased is not None,
            executions=erased.executions if erased is not None else 0,
            runs_still_going=live,
            compactions=compactions,
            cached_answers=answers,
            subject_keys=keys,
        )

    async def _subject_runs(self, request: ForgetRequest) -> list[str]:
        """The subject's runs, and its compactions' workflows (their histories quote its memories)."""
        async with self.pool.connection() as conn:
            run_ids = await documents.subject_run_ids(conn, request.subject, request.agent)
            compactions = await documents.subject_compaction_workflows(conn, request.subject, request.agent)
            return [*run_ids, *compactions]

    async def drop_vectors(self, ids: list[str]) -> int:
        """Delete these vectors now when this process owns the store, and clear their tombstones;
        else the tombstones (written with the documents' change) are left for the owner.

        Returns how many were deleted now.
        """
        self._searches.clear()
        if not ids:
            return 0
        if self.store is not None:
            await self._in_store(self.store.delete, ids)  # the exhaustive reader's own copy, too
        if not self.owns_store:
            return 0
        async with self.pool.connection() as conn:
            await documents.clear_tombstones(conn, ids)
        return len(ids)

    async def reindex(self, progress: Callable[[str], None] = lambda _: None) -> ReindexReport:
        """Rebuild the store from Postgres: re-embed rows of another model, copy every vector."""
        report = ReindexReport()
        started = time.perf_counter()
        report.reembedded = await self._reembed(progress)
        report.embed_seconds = time.perf_counter() - started
        async with self.pool.connection() as conn:
            doomed = await documents.tombstones(conn, 1_000_000)
            await documents.mark_all_unindexed(conn)
        await self._in_store(self._store.clear)
        self._searches.clear()
        started = time.perf_counter()
        report.documents = await self._copy_all(progress)
        report.upsert_seconds = time.perf_counter() - started
        started = time.perf_counter()
        await self._in_store(self._store.optimize)
        report.index_seconds = time.perf_counter() - started
        report.vectors = await self._in_store(self._store.count)
        async with self.pool.connection() as conn:
            await documents.clear_tombstones(conn, doomed)
        return report

    async def _scan(self) -> AsyncIterator[list[tuple[Document, Vector, str]]]:
        """Every stored document with its vector and embedder, in id-ordered batches."""
        after = ""
        while True:
            async with self.pool.connection() as conn:
                rows = await documents.scan(conn, after=after, limit=REINDEX_BATCH)
            if not rows:
                return
            after = rows[-1][0].memory_id
            yield rows

    async def _copy_all(self, progress: Callable[[str], None]) -> int:
        """Every document's vector from Postgres into the store, in id order; return how many."""
        copied = 0
        async for rows in self._scan():
            await self._index([(doc, vector) for doc, vector, _ in rows])
            copied += len(rows)
            progress(f"copied {copied} vectors")
        return copied

    async def _reembed(self, progress: Callable[[str], None]) -> int:
        done = 0
        async for rows in self._scan():
            stale = [doc for doc, _, embedder in rows if embedder != self.embedder.name]
            if not stale:
                continue
            vectors = await self.embedder.embed([doc.text for doc in stale])
            async with self.pool.connection() as conn:
                for doc, vector in zip(stale, vectors, strict=True):
                    await documents.replace_embedding(conn, doc.memory_id, vector, self.embedder.name)
            done += len(stale)
            progress(f"re-embedded {done} documents with {self.embedder.name}")
        return done

    # -- reads ----------------------------------------------------------------------------------

    async def recall(self, request: MemoryRecallRequest) -> MemoryRecallResult:
        if request.top_k == 0 or request.token_budget == 0:
            return MemoryRecallResult()
        await self._wait_caught_up()
        # Taken once: a store this worker takes over while the recall runs is still being
        # rebuilt, and this recall goes on as it started (detached: StoreBusy, now).
        store = self._store
        # Always: other workers' writes wait in Postgres for this one (the store's holder), and a
        # run must recall what a run before it remembered a moment ago on another worker.
        await self.sync(force=True)
        limit = max(request.top_k * CANDIDATES_PER_RESULT, MIN_CANDIDATES)
        hits, cached = await self._search(store, request, limit)
        async with self.pool.connection() as conn:
            found = await documents.fetch_live(conn, [hit.memory_id for hit in hits])
        candidates = [
            Candidate(found[hit.memory_id], hit.similarity) for hit in hits if hit.memory_id in found
        ]
        as_of = request.as_of or datetime.now(UTC)
        kept = pack(
            rank(candidates, request.scoring, as_of), top_k=request.top_k, token_budget=request.token_budget
        )
        return MemoryRecallResult(
            memories=[render(item.created_at, item.kind, item.text) for item in kept],
            tokens=sum(item.tokens for item in kept),
            items=kept,
            cached=cached,
        )

    async def _wait_caught_up(self) -> None:
        try:
            await asyncio.wait_for(self.caught_up.wait(), CATCH_UP_WAIT_SECONDS)
        except TimeoutError:
            raise StoreBusy("the memory store is still rebuilding its index from Postgres") from None

    async def _search(
        self, store: VectorStore, request: MemoryRecallRequest, limit: int
    ) -> tuple[list[Hit], bool]:
        """The store's nearest neighbours, reused for `cache_seconds` (documents are always re-read)."""
        key = (request.query, request.filter.model_dump_json(), limit)
        now = time.monotonic()
        cached = self._searches.get(key)
        if cached is not None and cached.expires > now:
            return cached.hits, True
        vector = await self.queries.embed_query(request.query)
        hits = await self._in_store(store.search, vector, request.filter, limit)
        if self.cache_seconds > 0:
            self._searches[key] = _CachedSearch(now + self.cache_seconds, hits)
        return hits, False

    async def search_only(
        self, vector: np.typing.NDArray[np.float32], request: MemoryRecallRequest, limit: int
    ) -> list[Hit]:
        """The vector search alone (benchmarks)."""
        return await self._in_store(self._store.search, vector, request.filter, limit)

    async def info(self) -> dict[str, Any]:
        async with self.pool.connection() as conn:
            stats = await documents.stats(conn, self.embedder.name)
        store = self.store
        return {
            "embedder": f"{self.embedder.name}: {self.embedder.description}",
            "store": store.description if store is not None else "not open",
            "documents": stats.documents,
            "indexed for this embedder": stats.indexed,
            "made by another embedder (reindex re-embeds)": stats.other_embedder,
            "vectors in the store": await self._in_store(store.count) if store is not None else "-",
            "vectors not yet in the HNSW index": await self._in_store(store.unindexed)
            if store is not None
            else "-",
            "deletions waiting for the store's owner": stats.tombstones,
            "subjects": stats.subjects,
            "agents": stats.agents,
            "oldest": stats.oldest.isoformat() if stats.oldest else "-",
            "newest": stats.newest.isoformat() if stats.newest else "-",
            "query cache": f"{self.queries.hits} hits, {self.queries.misses} misses",
        }
