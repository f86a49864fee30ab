"""Memory documents in Postgres: the source of truth (SQL as named constants, writes idempotent)."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import numpy as np
import numpy.typing as npt
from psycopg import AsyncConnection

from aios.memory.messages import MemoryFilter, RememberRequest

CHARS_PER_TOKEN = 4  # the project's usual estimate (activities/agent.py, connectors/model)
Vector = npt.NDArray[np.float32]


def estimate_tokens(text: str) -> int:
    return max(1, len(text) // CHARS_PER_TOKEN)


def content_hash(request: RememberRequest) -> str:
    canonical = json.dumps(
        [request.text, request.kind, request.subject, sorted(request.tags), request.importance],
        separators=(",", ":"),
    )
    return hashlib.sha256(canonical.encode()).hexdigest()


def to_bytes(vector: Vector) -> bytes:
    return np.asarray(vector, dtype="<f4").tobytes()


def from_bytes(data: bytes) -> Vector:
    return np.frombuffer(data, dtype="<f4").astype(np.float32)


@dataclass(frozen=True)
class Document:
    memory_id: str
    agent: str
    subject: str
    kind: str
    text: str
    tags: list[str]
    importance: float
    source_run: str | None
    tokens: int
    created_at: datetime

    def payload(self) -> dict[str, Any]:
        """What Qdrant keeps beside the vector: only what filters need, never the text."""
        return {
            "agent": self.agent,
            "subject": self.subject,
            "kind": self.kind,
            "tags": self.tags,
            "created": self.created_at.timestamp(),
        }

    def matches(self, wanted: MemoryFilter) -> bool:
        """The filter in Python, as the vector stores apply it, for the exhaustive search."""
        subjects = {wanted.subject, ""} if wanted.include_general else {wanted.subject}
        checks = [
            wanted.agent is None or self.agent == wanted.agent,
            wanted.subject is None or self.subject in subjects,
            not wanted.kinds or self.kind in wanted.kinds,
            not wanted.tags or bool(set(wanted.tags) & set(self.tags)),
            wanted.since is None or self.created_at >= wanted.since,
            wanted.until is None or self.created_at <= wanted.until,
        ]
        return all(checks)


DOCUMENT_COLUMNS = (
    "memory_id::text, agent, subject, kind, text, tags, importance, source_run, tokens, created_at"
)

# The row is written as not indexed; an identical repeat (same key, same content) changes nothing.
UPSERT_DOCUMENT = """
INSERT INTO aios_memories AS m (memory_id, agent, subject, kind, text, tags, importance, source_run,
                                tokens, content_hash, embedder, embedding, indexed)
VALUES (%(memory_id)s, %(agent)s, %(subject)s, %(kind)s, %(text)s, %(tags)s, %(importance)s,
        %(source_run)s, %(tokens)s, %(content_hash)s, %(embedder)s, %(embedding)s, false)
ON CONFLICT (memory_id) DO UPDATE SET
    subject = EXCLUDED.subject, kind = EXCLUDED.kind, text = EXCLUDED.text, tags = EXCLUDED.tags,
    importance = EXCLUDED.importance, tokens = EXCLUDED.tokens, content_hash = EXCLUDED.content_hash,
    embedder = EXCLUDED.embedder, embedding = EXCLUDED.embedding, indexed = false, updated_at = now()
WHERE m.content_hash <> EXCLUDED.content_hash OR m.embedder <> EXCLUDED.embedder
RETURNING (xmax = 0) AS created
"""
EXISTING = "SELECT content_hash, embedder, indexed FROM aios_memories WHERE memory_id = %s"
MARK_INDEXED = "UPDATE aios_memories SET indexed = true WHERE memory_id = ANY(%s::uuid[]) AND embedder = %s"
FETCH_BY_IDS = f"SELECT {DOCUMENT_COLUMNS} FROM aios_memories WHERE memory_id = ANY(%s::uuid[])"
# Recall never returns what compaction archived, even if a reindex put its vector back.
FETCH_LIVE_BY_IDS = FETCH_BY_IDS + " AND archived_at IS NULL"
PENDING = f"""
SELECT {DOCUMENT_COLUMNS}, embedding FROM aios_memories
WHERE NOT indexed AND archived_at IS NULL AND embedder = %s ORDER BY updated_at LIMIT %s
"""
TOMBSTONES = "SELECT memory_id::text FROM aios_memory_tombstones ORDER BY deleted_at LIMIT %s"
CLEAR_TOMBSTONES = "DELETE FROM aios_memory_tombstones WHERE memory_id = ANY(%s::uuid[])"
ADD_TOMBSTONES = """
INSERT INTO aios_memory_tombstones (memory_id) SELECT unnest(%s::uuid[]) ON CONFLICT DO NOTHING
"""
DELETE_SUBJECT = """
DELETE FROM aios_memories WHERE subject = %s AND (%s::text IS NULL OR agent = %s) RETURNING memory_id::text
"""
# Run mirrors feed run-history recall; a run still going keeps its mirror (it would be rewritten).
DELETE_SUBJECT_RUNS = """
DELETE FROM aios_runs
WHERE (task->>'subject' = %s OR task->>'customer' = %s) AND (%s::text IS NULL OR agent = %s)
  AND status IN ('completed', 'compensated', 'needs_operator')
"""
LIVE_SUBJECT_RUNS = """
SELECT count(*) FROM aios_runs
WHERE (task->>'subject' = %s OR task->>'customer' = %s) AND (%s::text IS NULL OR agent = %s)
"""
SUBJECT_RUN_IDS = """
SELECT run_id FROM aios_runs
WHERE (task->>'subject' = %s OR task->>'customer' = %s) AND (%s::text IS NULL OR agent = %s)
ORDER BY run_id
"""
DELETE_RUNS = "DELETE FROM aios_runs WHERE run_id = ANY(%s::text[])"
# A subject's compactions: their summaries quote its memories. Their workflows (ids kept here)
# leave Temporal with the subject's runs.
SUBJECT_COMPACTION_WORKFLOWS = """
SELECT DISTINCT workflow_id FROM aios_memory_compactions
WHERE subject = %s AND (%s::text IS NULL OR agent = %s) AND workflow_id IS NOT NULL ORDER BY workflow_id
"""
DELETE_SUBJECT_COMPACTIONS = """
DELETE FROM aios_memory_compactions WHERE subject = %s AND (%s::text IS NULL OR agent = %s)
"""
ALL_WITH_VECTORS = f"""
SELECT {DOCUMENT_COLUMNS}, embedding, embedder FROM aios_memories
WHERE archived_at IS NULL AND memory_id::text > %s ORDER BY memory_id::text LIMIT %s
"""
MARK_ALL_UNINDEXED = "UPDATE aios_memories SET indexed = false"
UPDATE_EMBEDDING = """
UPDATE aios_memories SET embedding = %s, embedder = %s, indexed = false WHERE memory_id = %s
"""
STATS = """
SELECT count(*), count(*) FILTER (WHERE indexed AND embedder = %s),
       count(*) FILTER (WHERE embedder <> %s), count(DISTINCT subject), count(DISTINCT agent),
       (SELECT count(*) FROM aios_memory_tombstones), min(created_at), max(created_at)
FROM aios_memories
"""
LIST = f"""
SELECT {DOCUMENT_COLUMNS} FROM aios_memories
WHERE (%(agent)s::text IS NULL OR agent = %(agent)s) AND (%(subject)s::text IS NULL OR subject = %(subject)s)
  AND (%(run)s::text IS NULL OR source_run = %(run)s)
ORDER BY created_at DESC LIMIT %(limit)s
"""


def _document(row: tuple[Any, ...]) -> Document:
    return Document(
        memory_id=row[0],
        agent=row[1],
        subject=row[2],
        kind=row[3],
        text=row[4],
        tags=list(row[5]),
        importance=float(row[6]),
        source_run=row[7],
        tokens=int(row[8]),
        created_at=row[9],
    )


async def upsert(
    conn: AsyncConnection[Any], request: RememberRequest, *, embedder: str, vector: Vector
) -> tuple[bool, bool]:
    """Write the document (not yet indexed); return (created, changed)."""
    cursor = await conn.execute(
        UPSERT_DOCUMENT,
        {
            "memory_id": request.memory_id,
            "agent": request.agent,
            "subject": request.subject,
            "kind": request.kind,
            "text": request.text,
            "tags": sorted(set(request.tags)),
            "importance": request.importance,
            "source_run": request.source_run,
            "tokens": estimate_tokens(request.text),
            "content_hash": content_hash(request),
            "embedder": embedder,
            "embedding": to_bytes(vector),
        },
    )
    row = await cursor.fetchone()
    return (bool(row[0]), True) if row is not None else (False, False)


async def existing(conn: AsyncConnection[Any], memory_id: str) -> tuple[str, str, bool] | None:
    """(content hash, embedder, indexed) of a stored document, to skip re-embedding a repeat."""
    cursor = await conn.execute(EXISTING, (memory_id,))
    row = await cursor.fetchone()
    return (row[0], row[1], bool(row[2])) if row is not None else None


async def mark_indexed(conn: AsyncConnection[Any], ids: list[str], embedder: str) -> None:
    if ids:
        await conn.execute(MARK_INDEXED, (ids, embedder))


async def fetch(conn: AsyncConnection[Any], ids: list[str]) -> dict[str, Document]:
    if not ids:
        return {}
    cursor = await conn.execute(FETCH_BY_IDS, (ids,))
    return {doc.memory_id: doc for doc in map(_document, await cursor.fetchall())}


async def fetch_live(conn: AsyncConnection[Any], ids: list[str]) -> dict[str, Document]:
    """Like `fetch`, without the memories compaction archived: what recall may return."""
    if not ids:
        return {}
    cursor = await conn.execute(FETCH_LIVE_BY_IDS, (ids,))
    return {doc.memory_id: doc for doc in map(_document, await cursor.fetchall())}


async def pending(conn: AsyncConnection[Any], embedder: str, limit: int) -> list[tuple[Document, Vector]]:
    """Documents whose vector is not yet in Qdrant (a crash between the two writes, a CLI write)."""
    cursor = await conn.execute(PENDING, (embedder, limit))
    return [(_document(row), from_bytes(row[10])) for row in await cursor.fetchall()]


async def tombstones(conn: AsyncConnection[Any], limit: int) -> list[str]:
    cursor = await conn.execute(TOMBSTONES, (limit,))
    return [row[0] for row in await cursor.fetchall()]


async def clear_tombstones(conn: AsyncConnection[Any], ids: list[str]) -> None:
    if ids:
        await conn.execute(CLEAR_TOMBSTONES, (ids,))


async def add_tombstones(conn: AsyncConnection[Any], ids: list[str]) -> None:
    if ids:
        await conn.execute(ADD_TOMBSTONES, (ids,))


async def delete_subject(conn: AsyncConnection[Any], subject: str, agent: str | None) -> list[str]:
    cursor = await conn.execute(DELETE_SUBJECT, (subject, agent, agent))
    return [row[0] for row in await cursor.fetchall()]


async def delete_subject_runs(conn: AsyncConnection[Any], subject: str, agent: str | None) -> tuple[int, int]:
    """Delete finished runs' mirrors of the subject; return (deleted, still live)."""
    cursor = await conn.execute(DELETE_SUBJECT_RUNS, (subject, subject, agent, agent))
    deleted = cursor.rowcount
    cursor = await conn.execute(LIVE_SUBJECT_RUNS, (subject, subject, agent, agent))
    row = await cursor.fetchone()
    return deleted, int(row[0]) if row else 0


async def subject_compaction_workflows(
    conn: AsyncConnection[Any], subject: str, agent: str | None
) -> list[str]:
    cursor = await conn.execute(SUBJECT_COMPACTION_WORKFLOWS, (subject, agent, agent))
    return [row[0] for row in await cursor.fetchall()]


async def delete_subject_compactions(conn: AsyncConnection[Any], subject: str, agent: str | None) -> int:
    cursor = await conn.execute(DELETE_SUBJECT_COMPACTIONS, (subject, agent, agent))
    return cursor.rowcount


async def subject_run_ids(conn: AsyncConnection[Any], subject: str, agent: str | None) -> list[str]:
    """Every mirrored run of the subject, finished or not: where to look for it in Temporal."""
    cursor = await conn.execute(SUBJECT_RUN_IDS, (subject, subject, agent, agent))
    return [row[0] for row in await cursor.fetchall()]


async def delete_runs(conn: AsyncConnection[Any], run_ids: list[str]) -> int:
    """Delete these runs' mirrors (runs Temporal says are over); return how many there were."""
    if not run_ids:
        return 0
    cursor = await conn.execute(DELETE_RUNS, (run_ids,))
    return cursor.rowcount


async def scan(conn: AsyncConnection[Any], *, after: str, limit: int) -> list[tuple[Document, Vector, str]]:
    """Every document with its vector and embedder, in id order from `after` (keyset paging)."""
    cursor = await conn.execute(ALL_WITH_VECTORS, (after, limit))
    return [(_document(row), from_bytes(row[10]), row[11]) for row in await cursor.fetchall()]


async def replace_embedding(
    conn: AsyncConnection[Any], memory_id: str, vector: Vector, embedder: str
) -> None:
    await conn.execute(UPDATE_EMBEDDING, (to_bytes(vector), embedder, memory_id))


async def mark_all_unindexed(conn: AsyncConnection[Any]) -> None:
    await conn.execute(MARK_ALL_UNINDEXED)


@dataclass(frozen=True)
class Stats:
    documents: int
    indexed: int
    other_embedder: int
    subjects: int
    agents: int
    tombstones: int
    oldest: datetime | None
    newest: datetime | None


async def stats(conn: AsyncConnection[Any], embedder: str) -> Stats:
    cursor = await conn.execute(STATS, (embedder, embedder))
    row = await cursor.fetchone()
    assert row is not None  # an aggregate always returns one row
    return Stats(*row)


async def listing(
    conn: AsyncConnection[Any],
    *,
    agent: str | None,
    subject: str | None,
    limit: int,
    source_run: str | None = None,
) -> list[Document]:
    cursor = await conn.execute(LIST, {"agent": agent, "subject": subject, "limit": limit, "run": source_run})
    return [_document(row) for row in await cursor.fetchall()]
