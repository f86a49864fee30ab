"""recall@5 on a labeled set: the share of each query's answers found in the top 5, averaged."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from aios.memory.messages import MemoryFilter, MemoryRecallRequest, RememberRequest
from aios.memory.service import MemoryService

TOP = 5


@dataclass
class Evaluation:
    recall: float
    queries: int
    missed: list[str] = field(default_factory=list)


def load(labeled: Path) -> dict[str, Any]:
    data: dict[str, Any] = json.loads(labeled.read_text())
    return data


async def recall_at_5(service: MemoryService, labeled: Path, *, agent: str) -> Evaluation:
    """Remember the set's memories as `agent` through `service`, then ask every query."""
    data = load(labeled)
    names: dict[str, str] = {}
    for memory in data["memories"]:
        remember = RememberRequest(
            key=memory["id"], agent=agent, text=memory["text"], kind=memory["kind"], subject=memory["subject"]
        )
        names[remember.memory_id] = memory["id"]
        await service.remember(remember)
    total, missed = 0.0, []
    for query in data["queries"]:
        recall = MemoryRecallRequest(query=query["query"], filter=MemoryFilter(agent=agent), top_k=TOP)
        found = {names[item.memory_id] for item in (await service.recall(recall)).items}
        share = len(found & set(query["relevant"])) / len(query["relevant"])
        total += share
        if share < 1:
            missed.append(query["query"])
    return Evaluation(recall=total / len(data["queries"]), queries=len(data["queries"]), missed=missed)
