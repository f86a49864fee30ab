"""What crosses the Temporal boundary for memory: pure pydantic, safe to pass through the sandbox.

Workflows build these (with `workflow.now()` as `as_of`, and a `key` derived from the run and
step), so a replay asks for exactly the same thing, and a retried `remember` writes the same
document id: it is idempotent in Postgres and in Qdrant.
"""

from __future__ import annotations

import json
import uuid
from datetime import datetime
from typing import Any

from pydantic import Field, model_validator

from aios.models.base import Payload

# Document ids are uuid5(namespace, agent + key): stable across retries, replays and workers.
MEMORY_NAMESPACE = uuid.UUID("6f1c1f6e-54b4-4c4e-9d2f-61696f736d65")
QUERY_FIELDS = ("query", "question", "description", "summary", "text", "request")


def memory_id(agent: str, key: str) -> str:
    return str(uuid.uuid5(MEMORY_NAMESPACE, f"{agent}\x1f{key}"))


def query_from_task(task: dict[str, Any]) -> str:
    """The text a run recalls with: the task's own words if it has them, else the whole task."""
    for field in QUERY_FIELDS:
        value = task.get(field)
        if isinstance(value, str) and value.strip():
            return value
    return json.dumps(task, sort_keys=True, default=str)


def subject_of(task: dict[str, Any]) -> str | None:
    """A task's subject, as the run mirror already reads it (`subject`, else `customer`)."""
    subject = task.get("subject") or task.get("customer")
    return str(subject) if subject else None


class RememberRequest(Payload):
    key: str = Field(min_length=1, description="unique per agent; a workflow uses run id + step")
    agent: str = Field(min_length=1)
    text: str = Field(min_length=1, max_length=20_000)
    kind: str = Field(default="note", min_length=1, max_length=64, description="note, fact, outcome, ...")
    subject: str = Field(default="", max_length=500)
    tags: list[str] = Field(default_factory=list, max_length=32)
    importance: float = Field(default=0.5, ge=0, le=1)
    source_run: str | None = None

    @property
    def memory_id(self) -> str:
        return memory_id(self.agent, self.key)


class RememberResult(Payload):
    memory_id: str
    created: bool = Field(description="false: the same key was remembered before")
    changed: bool = Field(description="the text or metadata differed from what was stored")
    tokens: int
    indexed: bool = Field(description="false: written as pending, the store's owner indexes it")


class MemoryFilter(Payload):
    """Which memories a recall may return; every field given must match."""

    agent: str | None = None
    subject: str | None = None
    include_general: bool = Field(
        default=False, description="with `subject`: also memories about no subject (general knowledge)"
    )
    kinds: list[str] = Field(default_factory=list, description="any of these kinds; empty: all")
    tags: list[str] = Field(default_factory=list, description="any of these tags; empty: all")
    since: datetime | None = None
    until: datetime | None = None

    @model_validator(mode="after")
    def _ordered(self) -> MemoryFilter:
        if self.since is not None and self.until is not None and self.since > self.until:
            raise ValueError("expected since <= until")
        return self


class Scoring(Payload):
    """score = similarity * w_similarity + recency * w_recency + importance * w_importance.

    recency = 0.5 ** (age / half_life): 1 for a memory written now, 0.5 after one half-life.
    Similarity leads by default: recency and importance break near-ties between relevant
    memories, and never lift an unrelated one over a relevant one.
    """

    similarity: float = Field(default=1.0, ge=0)
    recency: float = Field(default=0.15, ge=0)
    importance: float = Field(default=0.15, ge=0)
    half_life_days: float = Field(default=30.0, gt=0)
    min_similarity: float = Field(default=0.2, ge=-1, le=1, description="below: never recalled")


class MemoryRecallRequest(Payload):
    query: str = Field(min_length=1)
    filter: MemoryFilter = MemoryFilter()
    top_k: int = Field(default=5, ge=0, le=100)
    token_budget: int = Field(default=1500, ge=0)
    scoring: Scoring = Scoring()
    as_of: datetime | None = Field(default=None, description="recency is measured from here (workflow.now())")
    include_run_history: bool = Field(
        default=False, description="also earlier runs of the same agent and subject (aios_runs)"
    )
    exclude_run: str | None = Field(default=None, description="the asking run, left out of run history")

    @classmethod
    def for_task(
        cls, *, agent: str, task: dict[str, Any], top_k: int, token_budget: int, as_of: datetime, run_id: str
    ) -> MemoryRecallRequest:
        """What an agent run recalls: its agent's memories about the task's subject, and run history."""
        return cls(
            query=query_from_task(task),
            filter=MemoryFilter(agent=agent, subject=subject_of(task), include_general=True),
            top_k=top_k,
            token_budget=token_budget,
            as_of=as_of,
            include_run_history=True,
            exclude_run=run_id,
        )


class RecalledMemory(Payload):
    memory_id: str
    text: str
    kind: str
    subject: str
    tags: list[str]
    importance: float
    created_at: datetime
    source_run: str | None
    similarity: float
    score: float
    tokens: int


class MemoryRecallResult(Payload):
    memories: list[str] = Field(default_factory=list, description="rendered for the model's context")
    tokens: int = 0
    items: list[RecalledMemory] = Field(default_factory=list)
    run_history: int = Field(default=0, description="how many of `memories` are earlier runs")
    cached: bool = Field(default=False, description="the candidates came from the worker-local cache")
    unavailable: str = Field(default="", description="why long-term memory was not searched, if it was not")
    holder_queue: str | None = Field(
        default=None, description="another worker holds the store: ask it on this task queue"
    )


class ForgetRequest(Payload):
    subject: str = Field(min_length=1)
    agent: str | None = Field(default=None, description="only this agent's memories; default: all")


class ForgetReport(Payload):
    subject: str
    documents: int = Field(description="memory documents deleted from Postgres")
    vectors: int = Field(description="vectors deleted from Qdrant now")
    vectors_pending: int = Field(description="vectors left for the process holding the store")
    run_mirrors: int = Field(default=0, description="aios_runs rows of the subject deleted")
    note: str = ""
    temporal_checked: bool = Field(default=False, description="the subject's runs were looked up in Temporal")
    executions: int = Field(default=0, description="Temporal executions deleted: runs and their children")
    runs_still_going: int = Field(default=0, description="runs of the subject not finished: kept everywhere")
    compactions: int = Field(default=0, description="compaction records (with their summaries) deleted")
    cached_answers: int = Field(default=0, description="model answers cached in the subject's runs deleted")
    subject_keys: int = Field(
        default=0, description="subject keys destroyed: what its runs recorded (audit, effects) is unreadable"
    )
