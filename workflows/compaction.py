"""Memory compaction: summarise a subject's old memories, check the summary, archive or keep.

Deterministic: the time (`workflow.now()`) and the compaction id (`workflow.uuid4()`) come from
the workflow API, and every read and write is an activity. A Temporal Schedule starts it (see
`create_compaction_schedule`), daily by default; the operator undoes one by its id.
"""

from __future__ import annotations

from datetime import timedelta

from temporalio import workflow
from temporalio.common import RetryPolicy

with workflow.unsafe.imports_passed_through():
    from temporalio.client import (
        Client,
        Schedule,
        ScheduleActionStartWorkflow,
        ScheduleHandle,
        ScheduleIntervalSpec,
        ScheduleOverlapPolicy,
        SchedulePolicy,
        ScheduleSpec,
    )

    from activities.compaction import CompactionActivities
    from aios.memory.compaction import (
        CandidatesRequest,
        CommitRequest,
        CompactionRequest,
        CompactionResult,
        FidelityRequest,
        SummariseRequest,
    )

BOOKKEEPING_TIMEOUT = timedelta(seconds=60)
SUMMARY_TIMEOUT = timedelta(minutes=5)  # a real model on a CPU can be slow
RETRY = RetryPolicy(
    initial_interval=timedelta(seconds=1), maximum_interval=timedelta(seconds=30), maximum_attempts=5
)


@workflow.defn(name="MemoryCompaction")
class CompactionWorkflow:
    @workflow.run
    async def run(self, request: CompactionRequest) -> CompactionResult:
        compaction_id = str(workflow.uuid4())
        sources = await workflow.execute_activity_method(
            CompactionActivities.candidates,
            CandidatesRequest(request=request, as_of=workflow.now()),
            start_to_close_timeout=BOOKKEEPING_TIMEOUT,
            retry_policy=RETRY,
        )
        if len(sources) < request.min_sources:
            return CompactionResult(
                compaction_id=compaction_id,
                status="skipped",
                sources=[s.memory_id for s in sources],
                note=f"{len(sources)} memories older than {request.older_than_days:g} days; "
                f"at least {request.min_sources} needed",
            )
        summary = await workflow.execute_activity_method(
            CompactionActivities.summarise,
            SummariseRequest(request=request, sources=sources),
            start_to_close_timeout=SUMMARY_TIMEOUT,
            retry_policy=RETRY,
        )
        report = await workflow.execute_activity_method(
            CompactionActivities.check,
            FidelityRequest(sources=sources, summary=summary.text, threshold=request.threshold),
            start_to_close_timeout=BOOKKEEPING_TIMEOUT,
            retry_policy=RETRY,
        )
        return await workflow.execute_activity_method(
            CompactionActivities.commit,
            CommitRequest(
                compaction_id=compaction_id,
                request=request,
                sources=sources,
                summary=summary,
                fidelity=report,
                workflow_id=workflow.info().workflow_id,
            ),
            start_to_close_timeout=BOOKKEEPING_TIMEOUT,
            retry_policy=RETRY,
        )


def schedule_id(request: CompactionRequest) -> str:
    return f"memory-compaction/{request.agent}/{request.subject or '-'}"


async def create_compaction_schedule(
    client: Client,
    request: CompactionRequest,
    *,
    task_queue: str,
    every: timedelta = timedelta(days=1),
    schedule: str | None = None,
) -> ScheduleHandle:
    """A Schedule that starts `CompactionWorkflow` for (agent, subject) every `every` (daily)."""
    name = schedule or schedule_id(request)
    return await client.create_schedule(
        name,
        Schedule(
            action=ScheduleActionStartWorkflow(
                CompactionWorkflow.run, request, id=f"{name}/run", task_queue=task_queue
            ),
            spec=ScheduleSpec(intervals=[ScheduleIntervalSpec(every=every)]),
            policy=SchedulePolicy(overlap=ScheduleOverlapPolicy.SKIP),
        ),
    )
