"""recall@5 on the labeled set in tests/data: >= 0.9 with the real model; the test embedder,
which only matches words, must do clearly worse (or the set would not test semantics)."""

from __future__ import annotations

from pathlib import Path

import pytest
from psycopg_pool import AsyncConnectionPool

from aios.memory import minilm
from aios.memory.embedders import Embedder, HashEmbedder, MiniLMEmbedder
from aios.memory.evaluation import recall_at_5
from aios.memory.service import MemoryService
from aios.memory.vectors import EdgeStore

LABELED = Path(__file__).resolve().parents[1] / "data" / "memory_recall.json"


async def evaluate(pool: AsyncConnectionPool, directory: Path, embedder: Embedder) -> float:
    service = MemoryService(pool=pool, embedder=embedder, store_factory=lambda _n, d: EdgeStore(directory, d))
    await service.open()
    try:
        return (await recall_at_5(service, LABELED, agent=f"eval-{embedder.name}")).recall
    finally:
        await service.close()


@pytest.mark.skipif(not minilm.available(), reason=minilm.INSTALL_HINT)
async def test_recall_at_5_with_the_real_model(pool: AsyncConnectionPool, tmp_path: Path) -> None:
    real = await evaluate(pool, tmp_path / "real", MiniLMEmbedder())
    words_only = await evaluate(pool, tmp_path / "hash", HashEmbedder())
    assert real >= 0.9
    assert words_only < real - 0.2
