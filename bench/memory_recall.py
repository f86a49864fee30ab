"""Long-term memory: recall latency at 1k-100k memories, the embedders, and recall@5.

Latency: for each size, the memories are written to a scratch Postgres database (COPY) and to
a Qdrant Edge shard (the embedded default) whose HNSW index is then built; the index build is
timed. "search" is the vector store's query alone (filtered to the agent, and to one subject
holding ~1% of the memories); "recall" is `MemoryService.recall` end to end: the query's
embedding by the real model (a new sentence each time, so never cached), the search, the
documents fetched from Postgres, scoring and packing. "recall, hot" repeats queries, so the
query cache answers instead of the model. At these sizes the vectors are synthetic (clustered
384-d, as sentence embeddings are): embedding 100k sentences would take half an hour here.
qdrant-client's local mode is measured on the same vectors up to 20k, for comparison.

recall@5: the labeled set in tests/data/memory_recall.json (40 memories, 32 paraphrased
queries) remembered and recalled through the service, with the real and the test embedder.
"""

from __future__ import annotations

import os
import tempfile
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import psycopg
from psycopg_pool import AsyncConnectionPool

from aios.memory import documents, minilm
from aios.memory.embedders import Embedder, HashEmbedder, MiniLMEmbedder
from aios.memory.evaluation import Evaluation, recall_at_5
from aios.memory.messages import MemoryFilter, MemoryRecallRequest
from aios.memory.service import MemoryService
from aios.memory.vectors import EdgeStore, Point, QdrantClientStore, VectorStore
from aios.settings import load_settings
from aios.store.migrate import migrate
from bench.report import Section, summarize_ms

SIZES = [1_000, 10_000, 20_000, 100_000]
LOCAL_MODE_SIZES = [1_000, 10_000, 20_000]  # brute force: slower than Edge by 10-100x beyond
DIMENSION = 384
QUERIES = 200
RECALLS = 60
SUBJECTS = 100
AGENT = "bench"
LABELED = Path(__file__).resolve().parent.parent / "tests" / "data" / "memory_recall.json"
Matrix = np.typing.NDArray[np.float32]


def clustered(count: int, rng: np.random.Generator, centres: Matrix) -> Matrix:
    """Points around random centres (cosine ~0.55 within a cluster), normalised like embeddings."""
    picks = rng.integers(0, len(centres), count)
    points = centres[picks] + 0.9 * rng.standard_normal((count, DIMENSION)).astype(np.float32)
    return np.asarray(points / np.linalg.norm(points, axis=1, keepdims=True), dtype=np.float32)


def ids_for(count: int) -> list[str]:
    return [str(uuid.uuid5(uuid.NAMESPACE_OID, f"bench-{index}")) for index in range(count)]


def payload(index: int, created: datetime) -> dict[str, Any]:
    return {
        "agent": AGENT,
        "subject": f"s{index % SUBJECTS}",
        "kind": "note",
        "tags": [],
        "created": created.timestamp(),
    }


async def fill_postgres(database_url: str, vectors: Matrix, ids: list[str], embedder: str) -> None:
    base = datetime.now(UTC) - timedelta(days=365)
    columns = (
        "memory_id, agent, subject, kind, text, importance, tokens, content_hash, embedder, embedding, "
        "indexed, created_at"
    )
    async with await psycopg.AsyncConnection.connect(database_url) as conn:
        async with conn.cursor() as cursor, cursor.copy(f"COPY aios_memories ({columns}) FROM STDIN") as copy:
            for index, memory_id in enumerate(ids):
                text = (
                    f"memory {index} about subject s{index % SUBJECTS}: an invoice, a refund or a delivery."
                )
                created = base + timedelta(minutes=5 * index)
                await copy.write_row(
                    (
                        memory_id,
                        AGENT,
                        f"s{index % SUBJECTS}",
                        "note",
                        text,
                        0.5,
                        len(text) // 4,
                        "-",
                        embedder,
                        documents.to_bytes(vectors[index]),
                        True,
                        created,
                    )
                )
        await conn.commit()


def fill_store(store: VectorStore, vectors: Matrix, ids: list[str]) -> float:
    """Upsert in batches; return points per second."""
    base = datetime.now(UTC) - timedelta(days=365)
    started = time.perf_counter()
    for start in range(0, len(ids), 1000):
        batch = range(start, min(len(ids), start + 1000))
        store.upsert([Point(ids[i], vectors[i], payload(i, base + timedelta(minutes=5 * i))) for i in batch])
    return len(ids) / (time.perf_counter() - started)


def time_searches(store: VectorStore, queries: Matrix, wanted: MemoryFilter) -> list[float]:
    for query in queries[:10]:
        store.search(query, wanted, 20)
    samples = []
    for query in queries:
        started = time.perf_counter()
        store.search(query, wanted, 20)
        samples.append(time.perf_counter() - started)
    return samples


def exact_overlap(store: VectorStore, vectors: Matrix, ids: list[str], queries: Matrix) -> float:
    """How many of the exact top 5 the store returns (HNSW is approximate)."""
    found = 0
    exact = np.argsort(-(queries[:50] @ vectors.T), axis=1)[:, :5]
    for row, query in enumerate(queries[:50]):
        got = {hit.memory_id for hit in store.search(query, MemoryFilter(agent=AGENT), 5)}
        found += len(got & {ids[i] for i in exact[row]})
    return found / (5 * 50)


def sentences(count: int, offset: int) -> list[str]:
    topics = ["refund", "invoice", "delivery", "contract", "discount", "payment", "meeting", "complaint"]
    return [
        f"What did we agree with customer {offset + i} about the {topics[i % len(topics)]} in week {i % 52}?"
        for i in range(count)
    ]


async def time_recalls(service: MemoryService, texts: list[str], wanted: MemoryFilter) -> list[float]:
    samples = []
    for text in texts:
        request = MemoryRecallRequest(query=text, filter=wanted, top_k=5, token_budget=1500)
        started = time.perf_counter()
        await service.recall(request)
        samples.append(time.perf_counter() - started)
    return samples


async def one_size(
    section: Section, size: int, database_url: str, *, vectors: Matrix, queries: Matrix, embedder: Embedder
) -> None:
    ids = ids_for(size)
    directory = Path(tempfile.mkdtemp(prefix="aios-bench-edge-"))
    store = EdgeStore(directory / "shard", DIMENSION)
    rate = fill_store(store, vectors[:size], ids)
    started = time.perf_counter()
    store.optimize()
    build = time.perf_counter() - started
    everyone = MemoryFilter(agent=AGENT)
    one_subject = MemoryFilter(agent=AGENT, subject="s7")
    section.add(
        f"{size // 1000}k: Edge upserts, index build", f"{rate:,.0f} points/s, index built in {build:.1f} s"
    )
    section.add(
        f"{size // 1000}k: search (agent filter)", summarize_ms(time_searches(store, queries, everyone))
    )
    section.add(
        f"{size // 1000}k: search (one subject, ~1%)",
        summarize_ms(time_searches(store, queries, one_subject)),
    )
    section.add(
        f"{size // 1000}k: search top-5 overlap with exact",
        f"{exact_overlap(store, vectors[:size], ids, queries):.3f}",
    )
    store.close()
    await recall_latency(section, size, database_url, directory, embedder)


async def recall_latency(
    section: Section, size: int, database_url: str, directory: Path, embedder: Embedder
) -> None:
    async with AsyncConnectionPool(database_url, min_size=1, max_size=4, kwargs={"autocommit": True}) as pool:
        service = MemoryService(
            pool=pool,
            embedder=embedder,
            store_factory=lambda _name, dim: EdgeStore(directory / "shard", dim),
            cache_seconds=0,
        )
        await service.open(optimize=False)
        wanted = MemoryFilter(agent=AGENT)
        await time_recalls(service, sentences(5, 10_000_000), wanted)  # warm: model loaded, pool connected
        cold = await time_recalls(service, sentences(RECALLS, size), wanted)
        hot = await time_recalls(service, sentences(10, size) * (RECALLS // 10), wanted)
        await service.close()
    section.add(f"{size // 1000}k: recall end to end (query embedded)", summarize_ms(cold))
    section.add(f"{size // 1000}k: recall end to end, hot (query cached)", summarize_ms(hot))


def local_mode(section: Section, vectors: Matrix, queries: Matrix) -> None:
    for size in LOCAL_MODE_SIZES:
        store = QdrantClientStore(collection="bench", dimension=DIMENSION)
        rate = fill_store(store, vectors[:size], ids_for(size))
        samples = time_searches(store, queries[:50], MemoryFilter(agent=AGENT))
        section.add(
            f"{size // 1000}k: qdrant-client local mode (in memory) search",
            f"{summarize_ms(samples)}; {rate:,.0f} upserts/s",
        )
        store.close()


def embedder_figures(section: Section, model: MiniLMEmbedder) -> None:
    started = time.perf_counter()
    model.encode(["load"])
    section.add("MiniLM load (weights into numpy)", f"{time.perf_counter() - started:.2f} s")
    texts = sentences(40, 0)
    samples = []
    for text in texts:
        started = time.perf_counter()
        model.encode([text])
        samples.append(time.perf_counter() - started)
    section.add("MiniLM one query (1 BLAS thread)", summarize_ms(samples))
    batch = sentences(256, 1000)
    started = time.perf_counter()
    model.encode(batch)
    section.add("MiniLM batched", f"{len(batch) / (time.perf_counter() - started):.0f} sentences/s")


async def labeled_recall(database_url: str, embedder: Embedder) -> Evaluation:
    directory = Path(tempfile.mkdtemp(prefix="aios-bench-labeled-"))
    async with AsyncConnectionPool(database_url, min_size=1, max_size=4, kwargs={"autocommit": True}) as pool:
        service = MemoryService(
            pool=pool, embedder=embedder, store_factory=lambda _n, dim: EdgeStore(directory / "shard", dim)
        )
        await service.open()
        try:
            return await recall_at_5(service, LABELED, agent=f"labeled-{embedder.name}")
        finally:
            await service.close()


async def measure() -> Section:
    section = Section(
        "Long-term memory recall",
        "python -m bench memory_recall",
        notes=(
            "Qdrant Edge (embedded default), 384-d cosine. search = the store's query alone, top 20; "
            "recall = MemoryService.recall: real MiniLM query embedding + search + Postgres fetch + "
            "scoring + packing. Synthetic clustered vectors for latency; the labeled set for recall@5. "
            f"Load average at start: {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores (other work "
            "on the machine shows in the tails)."
        ),
    )
    settings = load_settings()
    name = f"aios_bench_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(settings.resolved_database_url, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"'.encode())
    database_url = settings.resolved_database_url.rpartition("/")[0] + "/" + name
    try:
        await run_all(section, database_url)
    finally:
        with psycopg.connect(settings.resolved_database_url, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'.encode())
    return section


async def run_all(section: Section, database_url: str) -> None:
    await migrate(database_url)
    rng = np.random.default_rng(7)
    centres = rng.standard_normal((1000, DIMENSION)).astype(np.float32)
    vectors = clustered(max(SIZES), rng, centres)
    queries = clustered(QUERIES, rng, centres)
    real: Embedder = MiniLMEmbedder() if minilm.available() else HashEmbedder()
    if isinstance(real, MiniLMEmbedder):
        embedder_figures(section, real)
    else:
        section.add(
            "MiniLM", f"not installed ({minilm.INSTALL_HINT}): end-to-end figures use the test embedder"
        )
    await fill_postgres(database_url, vectors, ids_for(max(SIZES)), real.name)
    for size in SIZES:
        await timed(
            f"size {size}",
            one_size(section, size, database_url, vectors=vectors, queries=queries, embedder=real),
        )
    local_mode(section, vectors, queries)
    for embedder in [real, HashEmbedder()]:
        evaluation = await labeled_recall(database_url, embedder)
        section.add(
            f"recall@5, {embedder.name}",
            f"{evaluation.recall:.3f} ({len(evaluation.missed)} of {evaluation.queries} queries missed one)",
        )


async def timed(label: str, work: Any, say: Callable[[str], None] = print) -> None:
    started = time.perf_counter()
    await work
    say(f"  ({label} took {time.perf_counter() - started:.0f} s)")
