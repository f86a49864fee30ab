from __future__ import annotations

from datetime import UTC, datetime, timedelta

from aios.memory.documents import Document, estimate_tokens
from aios.memory.messages import RecalledMemory, Scoring
from aios.memory.scoring import Candidate, pack, pack_lines, rank, recency

NOW = datetime(2026, 11, 1, tzinfo=UTC)


def doc(memory_id: str, *, days_old: float = 0, importance: float = 0.5, text: str = "x") -> Document:
    return Document(
        memory_id=memory_id,
        agent="a",
        subject="",
        kind="note",
        text=text,
        tags=[],
        importance=importance,
        source_run=None,
        tokens=estimate_tokens(text),
        created_at=NOW - timedelta(days=days_old),
    )


def test_recency_halves_every_half_life() -> None:
    assert recency(NOW, NOW, 30) == 1.0
    assert abs(recency(NOW - timedelta(days=30), NOW, 30) - 0.5) < 1e-9
    assert recency(NOW + timedelta(days=1), NOW, 30) == 1.0  # clocks disagree: never above 1


def test_similarity_leads_and_recency_breaks_near_ties() -> None:
    ranked = rank(
        [
            Candidate(doc("old-relevant", days_old=365), 0.80),
            Candidate(doc("new-unrelated"), 0.30),
            Candidate(doc("new-relevant"), 0.79),
        ],
        Scoring(),
        NOW,
    )
    assert [item.memory_id for item in ranked] == ["new-relevant", "old-relevant", "new-unrelated"]


def test_importance_counts_and_min_similarity_cuts() -> None:
    ranked = rank(
        [
            Candidate(doc("plain", importance=0.0), 0.6),
            Candidate(doc("important", importance=1.0), 0.6),
            Candidate(doc("noise", importance=1.0), 0.1),
        ],
        Scoring(min_similarity=0.2),
        NOW,
    )
    assert [item.memory_id for item in ranked] == ["important", "plain"]


def item(memory_id: str, tokens: int) -> RecalledMemory:
    return RecalledMemory(
        memory_id=memory_id,
        text="t",
        kind="note",
        subject="",
        tags=[],
        importance=0.5,
        created_at=NOW,
        source_run=None,
        similarity=0.5,
        score=0.5,
        tokens=tokens,
    )


def test_pack_respects_budget_and_top_k_and_skips_what_does_not_fit() -> None:
    items = [item("a", 40), item("big", 100), item("b", 30), item("c", 30), item("d", 1)]
    kept = pack(items, top_k=3, token_budget=100)
    assert [i.memory_id for i in kept] == ["a", "b", "c"]
    assert sum(i.tokens for i in kept) <= 100
    assert pack(items, top_k=5, token_budget=0) == []


def test_pack_lines_stays_within_budget() -> None:
    lines = ["x" * 40, "y" * 400, "z" * 40]  # 10, 100, 10 tokens
    kept, tokens = pack_lines(lines, 25)
    assert kept == ["x" * 40, "z" * 40]
    assert tokens == 20
