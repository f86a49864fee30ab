from __future__ import annotations

from datetime import UTC, datetime

import pytest
from pydantic import ValidationError

from aios.memory.messages import (
    MemoryFilter,
    MemoryRecallRequest,
    RememberRequest,
    query_from_task,
    subject_of,
)


def test_memory_id_is_stable_per_agent_and_key() -> None:
    first = RememberRequest(key="run-1/outcome", agent="desk", text="a")
    again = RememberRequest(key="run-1/outcome", agent="desk", text="b")
    other = RememberRequest(key="run-1/outcome", agent="other", text="a")
    assert first.memory_id == again.memory_id != other.memory_id


def test_query_and_subject_from_task() -> None:
    assert query_from_task({"description": "refund order 7", "customer": "acme"}) == "refund order 7"
    assert query_from_task({"amount": 5}) == '{"amount": 5}'
    assert subject_of({"customer": "acme"}) == "acme"
    assert subject_of({}) is None


def test_for_task_recalls_the_subject_and_general_knowledge() -> None:
    now = datetime(2026, 11, 1, tzinfo=UTC)
    request = MemoryRecallRequest.for_task(
        agent="desk",
        task={"subject": "acme", "query": "q"},
        top_k=3,
        token_budget=100,
        as_of=now,
        run_id="r1",
    )
    assert request.filter == MemoryFilter(agent="desk", subject="acme", include_general=True)
    assert request.include_run_history
    assert request.exclude_run == "r1"


def test_time_range_must_be_ordered() -> None:
    with pytest.raises(ValidationError, match="since <= until"):
        MemoryFilter(since=datetime(2026, 2, 1, tzinfo=UTC), until=datetime(2026, 1, 1, tzinfo=UTC))
