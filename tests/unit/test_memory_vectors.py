"""The vector stores behind one interface: the same filters give the same answers."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pytest

from aios.memory.documents import Document
from aios.memory.embedders import HashEmbedder
from aios.memory.messages import MemoryFilter
from aios.memory.vectors import (
    EdgeStore,
    ExhaustiveStore,
    Point,
    QdrantClientStore,
    StoreBusy,
    VectorStore,
    holder,
)
from tests.support.env import child_env

JAN, FEB, MAR = (datetime(2026, month, 1, tzinfo=UTC) for month in (1, 2, 3))
ROWS = [
    ("00000000-0000-0000-0000-000000000001", "desk", "acme", "fact", ["billing"], JAN, "acme pays by card"),
    ("00000000-0000-0000-0000-000000000002", "desk", "acme", "note", [], FEB, "acme likes email"),
    ("00000000-0000-0000-0000-000000000003", "desk", "", "fact", ["billing"], MAR, "refunds need approval"),
    ("00000000-0000-0000-0000-000000000004", "other", "acme", "note", [], MAR, "acme is in Oslo"),
]


def documents() -> list[tuple[Document, np.typing.NDArray[np.float32]]]:
    vectors = HashEmbedder(size=16).encode([row[6] for row in ROWS])
    docs = [
        Document(i, agent, subject, kind, text, tags, 0.5, None, 3, created)
        for i, agent, subject, kind, tags, created, text in ROWS
    ]
    return list(zip(docs, vectors, strict=True))


@pytest.fixture(params=["edge", "local", "exhaustive"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[VectorStore]:
    rows = documents()
    points = [Point(d.memory_id, v, d.payload()) for d, v in rows]
    made: VectorStore
    if request.param == "edge":
        made = EdgeStore(tmp_path / "shard", 16)
    elif request.param == "local":
        made = QdrantClientStore(collection="t", dimension=16, path=tmp_path / "local")
    else:
        made = ExhaustiveStore(16, [(p, d) for p, (d, _) in zip(points, rows, strict=True)])
    if request.param != "exhaustive":
        made.upsert(points)
    yield made
    made.close()


def found(store: VectorStore, wanted: MemoryFilter) -> set[str]:
    query = np.ones(16, dtype=np.float32)
    return {hit.memory_id[-1] for hit in store.search(query, wanted, 10)}


def test_filters(store: VectorStore) -> None:
    assert found(store, MemoryFilter(agent="desk")) == {"1", "2", "3"}
    assert found(store, MemoryFilter(agent="desk", subject="acme")) == {"1", "2"}
    assert found(store, MemoryFilter(agent="desk", subject="acme", include_general=True)) == {"1", "2", "3"}
    assert found(store, MemoryFilter(kinds=["fact"])) == {"1", "3"}
    assert found(store, MemoryFilter(tags=["billing"], agent="desk")) == {"1", "3"}
    assert found(store, MemoryFilter(since=FEB, until=FEB)) == {"2"}
    assert found(store, MemoryFilter(since=FEB)) == {"2", "3", "4"}


def test_nearest_first_and_delete(store: VectorStore) -> None:
    vector = HashEmbedder(size=16).encode(["acme likes email"])[0]
    hits = store.search(vector, MemoryFilter(), 2)
    assert hits[0].memory_id.endswith("2")
    assert hits[0].similarity == pytest.approx(1.0, abs=1e-5)
    store.delete([hits[0].memory_id])
    assert "2" not in found(store, MemoryFilter())
    assert store.count() == 3


def test_an_embedded_store_refuses_a_second_process(tmp_path: Path) -> None:
    store = EdgeStore(tmp_path / "shard", 16)
    try:
        assert holder(tmp_path / "shard.lock") is not None
        probe = (
            "from pathlib import Path; from aios.memory.vectors import EdgeStore\n"
            f"EdgeStore(Path({str(tmp_path / 'shard')!r}), 16)"
        )
        second = subprocess.run(
            [sys.executable, "-c", probe],
            env=child_env(),
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        assert second.returncode != 0
        assert "StoreBusy" in second.stderr
        assert "AIOS_QDRANT_URL" in second.stderr
        with pytest.raises(StoreBusy):  # a second open in this process is refused too
            EdgeStore(tmp_path / "shard", 16)
    finally:
        store.close()
    assert holder(tmp_path / "shard.lock") is None
    EdgeStore(tmp_path / "shard", 16).close()  # free again once closed
