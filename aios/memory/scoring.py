"""Ranking recalled memories (similarity, recency, importance) and packing them into a budget."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from aios.memory.documents import Document, estimate_tokens
from aios.memory.messages import RecalledMemory, Scoring

SECONDS_PER_DAY = 86_400.0


@dataclass(frozen=True)
class Candidate:
    document: Document
    similarity: float


def recency(created_at: datetime, as_of: datetime, half_life_days: float) -> float:
    """1 for a memory written at `as_of`, halving every half-life; a future one counts as new."""
    age_days = max(0.0, (as_of - created_at).total_seconds() / SECONDS_PER_DAY)
    return float(0.5 ** (age_days / half_life_days))


def score(candidate: Candidate, scoring: Scoring, as_of: datetime) -> float:
    doc = candidate.document
    return (
        scoring.similarity * candidate.similarity
        + scoring.recency * recency(doc.created_at, as_of, scoring.half_life_days)
        + scoring.importance * doc.importance
    )


def render(created_at: datetime, kind: str, text: str) -> str:
    """How a memory reads in the model's context: its date and kind, then its text."""
    return f"{created_at.date().isoformat()} [{kind}] {text}"


def rank(candidates: list[Candidate], scoring: Scoring, as_of: datetime) -> list[RecalledMemory]:
    """Relevant candidates, best first; ties go to the newer memory, then to the id (stable)."""
    relevant = [c for c in candidates if c.similarity >= scoring.min_similarity]
    scored = [(score(c, scoring, as_of), c) for c in relevant]
    scored.sort(
        key=lambda pair: (-pair[0], -pair[1].document.created_at.timestamp(), pair[1].document.memory_id)
    )
    return [_recalled(c, value) for value, c in scored]


def _recalled(candidate: Candidate, value: float) -> RecalledMemory:
    doc = candidate.document
    return RecalledMemory(
        memory_id=doc.memory_id,
        text=doc.text,
        kind=doc.kind,
        subject=doc.subject,
        tags=doc.tags,
        importance=doc.importance,
        created_at=doc.created_at,
        source_run=doc.source_run,
        similarity=round(candidate.similarity, 6),
        score=round(value, 6),
        tokens=estimate_tokens(render(doc.created_at, doc.kind, doc.text)),
    )


def pack(items: list[RecalledMemory], *, top_k: int, token_budget: int) -> list[RecalledMemory]:
    """The best `top_k` that fit the budget, in rank order.

    An item too large for what is left is skipped, not a stop: a long memory ranked third must
    not keep two short ones ranked fourth and fifth out of the context.
    """
    kept: list[RecalledMemory] = []
    spent = 0
    for item in items:
        if len(kept) == top_k:
            break
        if spent + item.tokens <= token_budget:
            kept.append(item)
            spent += item.tokens
    return kept


def pack_lines(lines: list[str], token_budget: int) -> tuple[list[str], int]:
    """Plain lines (run history), in order, within the budget; return them and their tokens."""
    kept: list[str] = []
    spent = 0
    for line in lines:
        cost = estimate_tokens(line)
        if spent + cost <= token_budget:
            kept.append(line)
            spent += cost
    return kept, spent
