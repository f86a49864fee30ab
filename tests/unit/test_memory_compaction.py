"""The pure parts of memory compaction: the offline summariser, the fidelity score, the model path."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import cast

import numpy as np
import pytest
from pydantic import ValidationError

from aios.memory.compaction import (
    OFFLINE_LABEL,
    OFFLINE_SUMMARISER,
    CompactionRequest,
    Compactor,
    SourceMemory,
    extractive_summary,
    fidelity,
    sentences,
    summary_id,
)
from aios.memory.embedders import HashEmbedder
from aios.memory.service import MemoryService
from connectors.model.offline import OfflineModel
from connectors.model.types import ChatRequest, ChatResponse, ModelProvider

T0 = datetime(2026, 1, 1, tzinfo=UTC)


def source(n: int, text: str, importance: float = 0.5) -> SourceMemory:
    return SourceMemory(
        memory_id=f"00000000-0000-0000-0000-{n:012d}",
        text=text,
        importance=importance,
        created_at=T0 + timedelta(days=n),
    )


class FakeModel:
    def __init__(self, text: str) -> None:
        self.text = text
        self.requests: list[ChatRequest] = []

    async def chat(self, request: ChatRequest) -> ChatResponse:
        self.requests.append(request)
        return ChatResponse(text=self.text, model="fake-1")


class EmbedderOnly:
    """All `check` needs of a MemoryService."""

    embedder = HashEmbedder()


def compactor(models: dict[str, ModelProvider] | None = None) -> Compactor:
    return Compactor(cast(MemoryService, EmbedderOnly()), models)


def test_sentences_split_on_ends_and_lines() -> None:
    assert sentences("One. Two!  Three?\nFour") == ["One.", "Two!", "Three?", "Four"]
    assert sentences("  ") == []


def test_the_offline_summary_keeps_every_sentence_once_oldest_first_and_says_so() -> None:
    sources = [source(2, "Acme pays by card. Dana is the contact"), source(1, "acme pays by card.")]
    text = extractive_summary(sources)
    assert text.splitlines() == [OFFLINE_LABEL, "acme pays by card.", "Dana is the contact."]
    assert extractive_summary(sources, max_sentences=1).splitlines() == [OFFLINE_LABEL, "acme pays by card."]
    assert extractive_summary(list(reversed(sources))) == text  # deterministic
    # An earlier summary compacted again keeps its facts, not its label.
    again = extractive_summary([source(0, text), source(3, "New fact.")])
    assert again.splitlines() == [OFFLINE_LABEL, "acme pays by card.", "Dana is the contact.", "New fact."]


def test_fidelity_is_each_sources_best_cosine() -> None:
    sources = np.array([[1, 0, 0], [0, 1, 0], [0, 0, 0]], dtype=np.float32)
    summary = np.array([[2, 0, 0], [1, 1, 0]], dtype=np.float32)
    scores = fidelity(sources, summary)
    assert scores[0] == pytest.approx(1.0)
    assert scores[1] == pytest.approx(2**-0.5)
    assert scores[2] == pytest.approx(0.0)  # a zero vector matches nothing, without dividing by zero


def test_the_summary_id_is_stable_per_compaction() -> None:
    assert summary_id("desk", "c1") == summary_id("desk", "c1") != summary_id("desk", "c2")


def test_the_request_checks_its_bounds() -> None:
    with pytest.raises(ValidationError):
        CompactionRequest(agent="", subject="acme")
    with pytest.raises(ValidationError):
        CompactionRequest(agent="desk", subject="acme", older_than_days=-1)


async def test_check_passes_an_extractive_summary_and_fails_a_lossy_one() -> None:
    sources = [
        source(1, "acme pays invoices by card"),
        source(2, "the warehouse roof leaks. it rains in winter"),
    ]
    full = await compactor().check(sources, extractive_summary(sources), 0.6)
    assert full.passed and all(score.similarity > 0.99 for score in full.scores)
    lossy = await compactor().check(sources, extractive_summary(sources, max_sentences=2), 0.6)
    assert not lossy.passed
    assert lossy.failed == [sources[1].memory_id]  # its second sentence was dropped


async def test_offline_provider_uses_the_extractive_summariser() -> None:
    request = CompactionRequest(agent="desk", subject="acme")
    sources = [source(1, "acme pays by card")]
    for models in (None, {"offline": cast(ModelProvider, OfflineModel())}):
        summary = await compactor(models).summarise(request, sources)
        assert summary.offline and summary.summariser == OFFLINE_SUMMARISER
        assert summary.text.startswith(OFFLINE_LABEL)
    # A provider answering as the offline model (it cannot summarise) falls back too.
    offline = await compactor({"openai": OfflineModel()}).summarise(
        request.model_copy(update={"provider": "openai"}), sources
    )
    assert offline.offline


async def test_a_real_provider_is_asked_for_the_summary() -> None:
    model = FakeModel("  Acme pays by card.  ")
    request = CompactionRequest(agent="desk", subject="acme", provider="openai", model="m")
    summary = await compactor({"openai": model}).summarise(request, [source(1, "acme pays by card")])
    assert (summary.text, summary.summariser, summary.offline) == ("Acme pays by card.", "fake-1", False)
    [asked] = model.requests
    assert asked.model == "m"
    assert "- acme pays by card" in asked.messages[-1].content
