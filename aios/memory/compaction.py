"""Memory compaction: summarise a subject's old memories, check the summary, archive, undo.

A compaction reads one (agent, subject)'s memories older than N days, asks a model for a
summary (or, with the offline model, builds an extractive one: the sources' sentences,
deduplicated, labelled as offline), then checks fidelity: every source must be retrievable from
the summary, i.e. its embedding's cosine similarity to the summary or to one of the summary's
sentences must reach the threshold. Only then is the summary remembered (kind `summary`, tag
`compacted`, the sources' highest importance) and the originals archived: their rows stay in
Postgres with `archived_at` and `compaction_id`, their vectors leave the store, so recall no
longer finds them. A failed check changes no memory; both outcomes are recorded in
`aios_memory_compactions` with the per-source scores. Undo re-indexes the originals and deletes
the summary.
"""

from __future__ import annotations

import json
import re
import uuid
from datetime import datetime, timedelta
from typing import Any, Literal

import numpy as np
from psycopg import AsyncConnection
from pydantic import Field

from aios.errors import CompactionNotFound
from aios.memory import documents
from aios.memory.documents import Document, Vector
from aios.memory.messages import RememberRequest
from aios.memory.service import MemoryService
from aios.models.base import Payload
from connectors.model.types import ChatMessage, ChatRequest, ModelProvider

OFFLINE_SUMMARISER = "offline-extractive"
OFFLINE_LABEL = "[offline extractive summary]"
SUMMARY_KIND = "summary"
COMPACTED_TAG = "compacted"
MAX_SUMMARY_CHARS = 20_000  # RememberRequest.text's limit
SENTENCE_END = re.compile(r"(?<=[.!?])\s+|\n+")
SYSTEM_PROMPT = (
    "You compact an agent's long-term memories about one subject. Write one summary that keeps "
    "every fact, figure, name, date and decision of the memories below, as short plain sentences, "
    "one fact per sentence. Do not add anything that is not in them. Answer with the summary only."
)

Status = Literal["archived", "failed_check", "undone", "skipped"]


# -- what crosses the Temporal boundary ---------------------------------------------------------


class CompactionRequest(Payload):
    """One compaction of one agent's memories about one subject (the workflow's input)."""

    agent: str = Field(min_length=1)
    subject: str = Field(max_length=500, description="'' = the agent's general memories")
    older_than_days: float = Field(default=30.0, ge=0, description="only memories at least this old")
    threshold: float = Field(
        default=0.6, ge=-1, le=1.5, description="least cosine similarity of each source to the summary"
    )
    min_sources: int = Field(default=2, ge=1, description="fewer old memories than this: nothing to do")
    max_sources: int = Field(default=50, ge=1, le=500)
    provider: str = Field(default="offline", description="a key of the worker's models; offline: extractive")
    model: str = Field(default="", description="model name for the provider (empty: the provider's default)")
    max_summary_sentences: int | None = Field(
        default=None, ge=1, description="cut the offline summary to this many sentences"
    )


class SourceMemory(Payload):
    memory_id: str
    text: str
    importance: float
    created_at: datetime


class CandidatesRequest(Payload):
    request: CompactionRequest
    as_of: datetime = Field(description="workflow.now(): 'older than' is measured from here")


class SummariseRequest(Payload):
    request: CompactionRequest
    sources: list[SourceMemory]


class Summary(Payload):
    text: str
    summariser: str
    offline: bool


class SourceScore(Payload):
    memory_id: str
    similarity: float = Field(description="the source's worst-kept sentence against the summary")
    whole: float = Field(default=0.0, description="the whole source against the nearest summary part")
    passed: bool


class FidelityRequest(Payload):
    sources: list[SourceMemory]
    summary: str
    threshold: float


class FidelityReport(Payload):
    passed: bool
    threshold: float
    scores: list[SourceScore]

    @property
    def failed(self) -> list[str]:
        return [score.memory_id for score in self.scores if not score.passed]


class CommitRequest(Payload):
    compaction_id: str
    request: CompactionRequest
    sources: list[SourceMemory]
    summary: Summary
    fidelity: FidelityReport
    workflow_id: str = ""


class CompactionResult(Payload):
    compaction_id: str
    status: Status
    sources: list[str] = Field(default_factory=list)
    summary_id: str | None = None
    scores: list[SourceScore] = Field(default_factory=list)
    note: str = ""


class UndoRequest(Payload):
    compaction_id: str


class UndoResult(Payload):
    compaction_id: str
    restored: int
    summary_deleted: bool
    note: str = ""


# -- pure parts ---------------------------------------------------------------------------------


def sentences(text: str) -> list[str]:
    return [part.strip() for part in SENTENCE_END.split(text) if part.strip()]


def _normal(sentence: str) -> str:
    return " ".join(sentence.lower().rstrip(".!? ").split())


def extractive_summary(sources: list[SourceMemory], max_sentences: int | None = None) -> str:
    """The offline summariser: every source's sentences, oldest first, each once, labelled."""
    seen: set[str] = set()
    kept: list[str] = []
    for source in sorted(sources, key=lambda s: (s.created_at, s.memory_id)):
        for sentence in sentences(source.text):
            key = _normal(sentence)
            if key and key not in seen and sentence != OFFLINE_LABEL:  # an earlier summary's label
                seen.add(key)
                kept.append(sentence if sentence[-1] in ".!?" else sentence + ".")
    if max_sentences is not None:
        kept = kept[:max_sentences]
    return OFFLINE_LABEL + "\n" + "\n".join(kept)


def summary_id(agent: str, compaction_id: str) -> str:
    return RememberRequest(key=f"compaction/{compaction_id}", agent=agent, text="-").memory_id


def _unit(vectors: Vector) -> Vector:
    matrix = np.atleast_2d(np.asarray(vectors, dtype=np.float32))
    norms = np.linalg.norm(matrix, axis=1, keepdims=True)
    return np.asarray(matrix / np.where(norms == 0, 1.0, norms), dtype=np.float32)


def fidelity(source_vectors: Vector, summary_vectors: Vector) -> list[float]:
    """For each source, its best cosine similarity to any summary vector (whole or a sentence)."""
    similarity = _unit(source_vectors) @ _unit(summary_vectors).T
    return [float(row.max()) for row in similarity]


# -- the operations -----------------------------------------------------------------------------

CANDIDATES = f"""
SELECT {documents.DOCUMENT_COLUMNS} FROM aios_memories
WHERE agent = %(agent)s AND subject = %(subject)s AND archived_at IS NULL AND created_at <= %(before)s
ORDER BY created_at, memory_id LIMIT %(limit)s
"""
ARCHIVE = """
UPDATE aios_memories SET archived_at = now(), compaction_id = %s
WHERE memory_id = ANY(%s::uuid[]) AND archived_at IS NULL RETURNING memory_id::text
"""
RESTORE = """
UPDATE aios_memories SET archived_at = NULL, compaction_id = NULL, indexed = false
WHERE compaction_id = %s RETURNING memory_id::text
"""
RECORD = """
INSERT INTO aios_memory_compactions (compaction_id, agent, subject, status, source_ids, summary_id,
    summary_text, summariser, threshold, scores, workflow_id)
VALUES (%s, %s, %s, %s, %s::uuid[], %s, %s, %s, %s, %s::jsonb, %s)
ON CONFLICT (compaction_id) DO NOTHING
"""
GET = """
SELECT compaction_id::text, status, source_ids::text[], summary_id::text, scores
FROM aios_memory_compactions WHERE compaction_id = %s
"""
MARK_UNDONE = (
    "UPDATE aios_memory_compactions SET status = 'undone', undone_at = now() WHERE compaction_id = %s"
)
DELETE_DOCUMENT = "DELETE FROM aios_memories WHERE memory_id = %s RETURNING memory_id::text"
# `fidelity` is the worst-kept source's score: the check passed when it reached `threshold`.
LIST = """
SELECT compaction_id::text, agent, subject, status, cardinality(source_ids), summary_id::text,
       created_at, undone_at,
       (SELECT min((score->>'similarity')::float8) FROM jsonb_array_elements(scores) AS score),
       threshold
FROM aios_memory_compactions
WHERE (%(agent)s::text IS NULL OR agent = %(agent)s) AND (%(subject)s::text IS NULL OR subject = %(subject)s)
ORDER BY created_at DESC LIMIT %(limit)s
"""


def _source(doc: Document) -> SourceMemory:
    return SourceMemory(
        memory_id=doc.memory_id, text=doc.text, importance=doc.importance, created_at=doc.created_at
    )


class Compactor:
    """The compaction operations over one process's memory service and models."""

    def __init__(self, memory: MemoryService, models: dict[str, ModelProvider] | None = None) -> None:
        self.memory = memory
        self.models = models or {}

    async def candidates(self, request: CompactionRequest, as_of: datetime) -> list[SourceMemory]:
        before = as_of - timedelta(days=request.older_than_days)
        params = {
            "agent": request.agent,
            "subject": request.subject,
            "before": before,
            "limit": request.max_sources,
        }
        async with self.memory.pool.connection() as conn:
            cursor = await conn.execute(CANDIDATES, params)
            rows = await cursor.fetchall()
        return [_source(documents._document(row)) for row in rows]

    async def summarise(self, request: CompactionRequest, sources: list[SourceMemory]) -> Summary:
        provider = self.models.get(request.provider)
        if request.provider == "offline" or provider is None:
            text = extractive_summary(sources, request.max_summary_sentences)
            return Summary(text=text[:MAX_SUMMARY_CHARS], summariser=OFFLINE_SUMMARISER, offline=True)
        listing = "\n".join(f"- {source.text}" for source in sources)
        response = await provider.chat(
            ChatRequest(
                model=request.model,
                messages=[
                    ChatMessage(role="system", content=SYSTEM_PROMPT),
                    ChatMessage(role="user", content=f"Subject: {request.subject}\nMemories:\n{listing}"),
                ],
            )
        )
        if response.offline or not response.text.strip():  # a model that cannot summarise
            text = extractive_summary(sources, request.max_summary_sentences)
            return Summary(text=text[:MAX_SUMMARY_CHARS], summariser=OFFLINE_SUMMARISER, offline=True)
        return Summary(
            text=response.text.strip()[:MAX_SUMMARY_CHARS], summariser=response.model, offline=False
        )

    async def check(self, sources: list[SourceMemory], summary: str, threshold: float) -> FidelityReport:
        """Each source against the whole summary and each of its sentences, by the memory embedder.

        A source's score is its worst-kept sentence: each of its sentences against the nearest
        summary part. A source of two facts of which the summary kept one fails, even though the
        source as a whole still resembles the summary (`whole` reports that, for the operator).
        """
        parts = [summary, *sentences(summary)]
        pieces = [sentences(s.text) or [s.text] for s in sources]
        flat = [sentence for piece in pieces for sentence in piece]
        vectors = await self.memory.embedder.embed([*parts, *(s.text for s in sources), *flat])
        matrix = np.asarray(vectors, dtype=np.float32)
        summary_vectors = matrix[: len(parts)]
        whole = fidelity(matrix[len(parts) : len(parts) + len(sources)], summary_vectors)
        per_sentence = fidelity(matrix[len(parts) + len(sources) :], summary_vectors)
        scores, at = [], 0
        for source, best_whole, piece in zip(sources, whole, pieces, strict=True):
            worst_sentence = min(per_sentence[at : at + len(piece)])
            at += len(piece)
            scores.append(
                SourceScore(
                    memory_id=source.memory_id,
                    similarity=round(worst_sentence, 6),
                    whole=round(best_whole, 6),
                    passed=worst_sentence >= threshold,
                )
            )
        return FidelityReport(passed=all(s.passed for s in scores), threshold=threshold, scores=scores)

    async def commit(self, commit: CommitRequest) -> CompactionResult:
        """Archive (check passed) or only record (failed); a repeat returns the first outcome."""
        request, ids = commit.request, [s.memory_id for s in commit.sources]
        done = await self.get(commit.compaction_id)
        if done is not None:
            return done
        if not commit.fidelity.passed:
            await self._record(commit, "failed_check", None)
            return CompactionResult(
                compaction_id=commit.compaction_id,
                status="failed_check",
                sources=ids,
                scores=commit.fidelity.scores,
                note=f"kept the originals: {len(commit.fidelity.failed)} source(s) below "
                f"{commit.fidelity.threshold}",
            )
        remembered = await self.memory.remember(
            RememberRequest(
                key=f"compaction/{commit.compaction_id}",
                agent=request.agent,
                subject=request.subject,
                kind=SUMMARY_KIND,
                text=commit.summary.text,
                tags=[COMPACTED_TAG, commit.summary.summariser],
                importance=max(s.importance for s in commit.sources),
            )
        )
        async with self.memory.pool.connection() as conn, conn.transaction():
            archived = await _fetch_ids(conn, ARCHIVE, (commit.compaction_id, ids))
            await documents.add_tombstones(conn, archived)
            await self._record(commit, "archived", remembered.memory_id, conn)
        await self.memory.drop_vectors(archived)
        return CompactionResult(
            compaction_id=commit.compaction_id,
            status="archived",
            sources=archived,
            summary_id=remembered.memory_id,
            scores=commit.fidelity.scores,
        )

    async def undo(self, compaction_id: str) -> UndoResult:
        """Restore the originals (re-indexed from their stored vectors) and delete the summary."""
        done = await self.get(compaction_id)
        if done is None:
            raise CompactionNotFound(f"no compaction {compaction_id}")
        if done.status != "archived":
            return UndoResult(
                compaction_id=compaction_id,
                restored=0,
                summary_deleted=False,
                note=f"status is {done.status}",
            )
        async with self.memory.pool.connection() as conn, conn.transaction():
            restored = await _fetch_ids(conn, RESTORE, (compaction_id,))
            await documents.clear_tombstones(conn, restored)  # else an owner's sync would drop them again
            deleted = await _fetch_ids(conn, DELETE_DOCUMENT, (done.summary_id,)) if done.summary_id else []
            await documents.add_tombstones(conn, deleted)
            await conn.execute(MARK_UNDONE, (compaction_id,))
        await self.memory.drop_vectors(deleted)
        await self.memory.sync(force=True)  # the owner re-indexes the restored rows now
        return UndoResult(compaction_id=compaction_id, restored=len(restored), summary_deleted=bool(deleted))

    async def get(self, compaction_id: str) -> CompactionResult | None:
        async with self.memory.pool.connection() as conn:
            cursor = await conn.execute(GET, (compaction_id,))
            row = await cursor.fetchone()
        if row is None:
            return None
        return CompactionResult(
            compaction_id=row[0],
            status=row[1],
            sources=list(row[2]),
            summary_id=row[3],
            scores=[SourceScore.model_validate(score) for score in row[4]],
        )

    async def listing(
        self, *, agent: str | None = None, subject: str | None = None, limit: int = 50
    ) -> list[dict[str, Any]]:
        async with self.memory.pool.connection() as conn:
            cursor = await conn.execute(LIST, {"agent": agent, "subject": subject, "limit": limit})
            rows = await cursor.fetchall()
        keys = (
            "compaction_id",
            "agent",
            "subject",
            "status",
            "sources",
            "summary_id",
            "created_at",
            "undone_at",
            "fidelity",
            "threshold",
        )
        return [dict(zip(keys, row, strict=True)) for row in rows]

    async def _record(
        self,
        commit: CommitRequest,
        status: Status,
        summary: str | None,
        conn: AsyncConnection[Any] | None = None,
    ) -> None:
        params = (
            commit.compaction_id,
            commit.request.agent,
            commit.request.subject,
            status,
            [s.memory_id for s in commit.sources],
            summary,
            commit.summary.text,
            commit.summary.summariser,
            commit.fidelity.threshold,
            json.dumps([score.model_dump(exclude={"schema_version"}) for score in commit.fidelity.scores]),
            commit.workflow_id or None,
        )
        if conn is not None:
            await conn.execute(RECORD, params)
            return
        async with self.memory.pool.connection() as own:
            await own.execute(RECORD, params)


async def _fetch_ids(conn: AsyncConnection[Any], sql: str, params: tuple[Any, ...]) -> list[str]:
    cursor = await conn.execute(sql, params)
    return [row[0] for row in await cursor.fetchall()]


def new_compaction_id() -> str:
    return str(uuid.uuid4())
