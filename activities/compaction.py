"""Memory compaction activities: candidates, summarise, check, commit, undo (all the I/O).

The workflow passes `as_of` from `workflow.now()` and a compaction id from `workflow.uuid4()`,
so a retried or replayed step asks for the same thing; `commit` is idempotent on the id.
"""

from __future__ import annotations

from temporalio import activity

from activities.deps import ActivityDeps
from aios.errors import CompactionNotFound, CompactionUnavailable, application_error
from aios.memory.compaction import (
    CandidatesRequest,
    CommitRequest,
    CompactionResult,
    Compactor,
    FidelityReport,
    FidelityRequest,
    SourceMemory,
    SummariseRequest,
    Summary,
    UndoRequest,
    UndoResult,
)
from aios.memory.service import MemoryService


class CompactionActivities:
    def __init__(self, deps: ActivityDeps, memory: MemoryService | None = None) -> None:
        self._memory = memory if memory is not None else deps.memory
        self._models = deps.models
        self._unavailable = deps.memory_unavailable or "long-term memory is not configured in this worker"

    def _compactor(self) -> Compactor:
        if self._memory is None:
            raise application_error(CompactionUnavailable, self._unavailable, non_retryable=True)
        return Compactor(self._memory, self._models)

    @activity.defn(name="compaction.candidates")
    async def candidates(self, request: CandidatesRequest) -> list[SourceMemory]:
        return await self._compactor().candidates(request.request, request.as_of)

    @activity.defn(name="compaction.summarise")
    async def summarise(self, request: SummariseRequest) -> Summary:
        return await self._compactor().summarise(request.request, request.sources)

    @activity.defn(name="compaction.check")
    async def check(self, request: FidelityRequest) -> FidelityReport:
        return await self._compactor().check(request.sources, request.summary, request.threshold)

    @activity.defn(name="compaction.commit")
    async def commit(self, request: CommitRequest) -> CompactionResult:
        return await self._compactor().commit(request)

    @activity.defn(name="compaction.undo")
    async def undo(self, request: UndoRequest) -> UndoResult:
        try:
            return await self._compactor().undo(request.compaction_id)
        except CompactionNotFound as exc:
            raise application_error(CompactionNotFound, str(exc), non_retryable=True) from exc
