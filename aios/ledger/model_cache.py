"""The model-response cache's table: answers by question, until they expire.

A question is the whole call (provider, model, temperature, messages, tools) plus who may share
its answer (the agent, or the agent and the run's subject), hashed. The rules of what may be
cached at all are the activity's (activities/model_cache.py).
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from psycopg import AsyncConnection
from psycopg.types.json import Jsonb

from connectors.model import ChatRequest, ChatResponse

# A hit also counts itself, so `hits` says how often an answer was reused.
SERVE = """
UPDATE aios_model_cache SET hits = hits + 1
WHERE cache_key = %s AND expires_at > now()
RETURNING answer
"""
# An expired answer is replaced; a live one is kept (two runs asking at once keep the first).
KEEP = """
INSERT INTO aios_model_cache (cache_key, agent, subject, answer, tokens, expires_at)
VALUES (%s, %s, %s, %s, %s, now() + %s)
ON CONFLICT (cache_key) DO UPDATE
SET answer = excluded.answer, tokens = excluded.tokens, hits = 0,
    created_at = now(), expires_at = excluded.expires_at
WHERE aios_model_cache.expires_at <= now()
"""
FORGET_SUBJECT = "DELETE FROM aios_model_cache WHERE subject = %s AND (%s::text IS NULL OR agent = %s)"
DROP_EXPIRED = "DELETE FROM aios_model_cache WHERE expires_at <= now()"


@dataclass(frozen=True)
class Question:
    """One cacheable call: its key, and the agent that asked."""

    key: str
    agent: str


def question(provider: str, request: ChatRequest, *, agent: str, shared_by: str) -> Question:
    """The call's cache key; `shared_by` is the subject when only that subject's runs share it."""
    content = {
        "provider": provider,
        "request": request.model_dump(mode="json"),
        "agent": agent,
        "subject": shared_by,
    }
    canonical = json.dumps(content, sort_keys=True, separators=(",", ":"))
    return Question(key=hashlib.sha256(canonical.encode()).hexdigest(), agent=agent)


async def serve(conn: AsyncConnection[Any], key: str) -> ChatResponse | None:
    """The live answer to this question, or None."""
    cursor = await conn.execute(SERVE, (key,))
    row = await cursor.fetchone()
    return ChatResponse.model_validate(row[0]) if row else None


async def keep(
    conn: AsyncConnection[Any], asked: Question, answer: ChatResponse, *, subject: str, ttl: timedelta
) -> None:
    """Keep the answer for `ttl`; `subject` is the run's, whatever the scope, for forgetting."""
    await conn.execute(
        KEEP,
        (
            asked.key,
            asked.agent,
            subject or None,
            Jsonb(answer.model_dump(mode="json")),
            answer.total_tokens,
            ttl,
        ),
    )


async def forget_subject(conn: AsyncConnection[Any], subject: str, agent: str | None) -> int:
    """Delete the answers given in the subject's runs (of one agent, or of all)."""
    cursor = await conn.execute(FORGET_SUBJECT, (subject, agent, agent))
    return cursor.rowcount


async def drop_expired(conn: AsyncConnection[Any]) -> int:
    cursor = await conn.execute(DROP_EXPIRED)
    return cursor.rowcount
