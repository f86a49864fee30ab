"""Long-term memory activities: remember, recall (memories + run history), forget.

Workflows call these with inputs they build deterministically (a `key` from the run id and
step, `as_of` from `workflow.now()`); the results are recorded in the history, so a replay
reads the same memories, and a retried `remember` rewrites the same document and vector.
"""

from __future__ import annotations

from typing import Any

from temporalio import activity

from activities.deps import ActivityDeps
from aios.errors import MemoryUnavailable, application_error
from aios.ledger import runs
from aios.memory.messages import (
    ForgetReport,
    ForgetRequest,
    MemoryRecallRequest,
    MemoryRecallResult,
    RememberRequest,
    RememberResult,
)
from aios.memory.scoring import pack_lines
from aios.memory.service import MemoryService
from aios.memory.vectors import StoreBusy


class MemoryActivities:
    def __init__(self, deps: ActivityDeps, memory: MemoryService | None, unavailable: str = "") -> None:
        self._pool = deps.pool
        self._memory = memory
        self._unavailable = unavailable or "long-term memory is not configured in this worker"
        self._holder = deps.memory_holder
        self._queue = deps.memory_queue

    def _service(self) -> MemoryService:
        if self._memory is None:
            raise application_error(MemoryUnavailable, self._unavailable, non_retryable=True)
        return self._memory

    @activity.defn(name="memory.remember")
    async def remember(self, request: RememberRequest) -> RememberResult:
        return await self._service().remember(request)

    @activity.defn(name="memory.recall")
    async def recall(self, request: MemoryRecallRequest) -> MemoryRecallResult:
        """Long-term memories first (best score first), then earlier runs, in one token budget.

        Without a usable store the run still gets its run history, and `unavailable` says why
        long-term memory was left out: a locked store must not fail an agent's run.
        """
        result, unavailable = await self._long_term(request)
        if not request.include_run_history:
            return result
        left = request.token_budget - result.tokens
        # A run its agent remembered (its outcome memory) is not told twice.
        remembered = {item.source_run for item in result.items if item.source_run}
        lines = await self._run_history(request, limit=request.top_k, skip=remembered)
        kept, tokens = pack_lines(lines, left)
        return result.model_copy(
            update={
                "memories": [*result.memories, *kept],
                "tokens": result.tokens + tokens,
                "run_history": len(kept),
                "unavailable": unavailable,
            }
        )

    async def _long_term(self, request: MemoryRecallRequest) -> tuple[MemoryRecallResult, str]:
        if self._memory is None:
            return MemoryRecallResult(unavailable=self._unavailable), self._unavailable
        try:
            return await self._memory.recall(request), ""
        except StoreBusy as exc:  # another worker holds the store: the workflow asks it next
            return MemoryRecallResult(unavailable=str(exc), holder_queue=self._holder_queue()), str(exc)

    def _holder_queue(self) -> str | None:
        """Where to ask instead: only when a worker that serves the queue holds the store."""
        return self._queue if self._holder is not None and self._holder.held_elsewhere else None

    async def _run_history(self, request: MemoryRecallRequest, *, limit: int, skip: set[str]) -> list[str]:
        subject = request.filter.subject
        if not subject or not request.filter.agent or limit == 0:
            return []
        async with self._pool.connection() as conn:
            rows = await runs.subject_history(
                conn,
                agent=request.filter.agent,
                subject=subject,
                exclude_run=request.exclude_run or activity.info().workflow_id or "",
                limit=limit,
            )
        return [describe_run(row) for row in rows if row["run_id"] not in skip]

    @activity.defn(name="memory.forget")
    async def forget(self, request: ForgetRequest) -> ForgetReport:
        return await self._service().forget(request)


def describe_run(row: dict[str, Any]) -> str:
    """One earlier run as a line of context (the same words as `agent.recall` uses)."""
    state = row["state"]
    amounts = {p["step"]: p["proposed"].get("amount") for p in state.get("proposals", [])}
    done = [
        step["action"] + (f" {amounts[step['step']]:g}" if amounts.get(step["step"]) is not None else "")
        for step in state.get("steps", [])
        if step.get("status") == "executed"
    ]
    when = row["started_at"].date().isoformat()
    return f"{when}: run {row['run_id']} ({row['status']}) did: {', '.join(done) or 'nothing'}"
