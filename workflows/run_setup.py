"""Before a run's first turn: a slot among the agent's concurrent runs, then what it recalls.

When bookkeeping is fused both start as local activities, inside the workflow task: one
quick try for the slot, and only a busy agent's run queues on the regular, retried activity.
"""

from __future__ import annotations

from datetime import timedelta

from temporalio import workflow
from temporalio.common import RetryPolicy
from temporalio.exceptions import ActivityError, CancelledError, FailureError

from workflows.bookkeeping import BOOKKEEPING_TIMEOUT
from workflows.versions import MEMORY_HOLDER_PATCH, MEMORY_RECALL_PATCH

with workflow.unsafe.imports_passed_through():
    from activities.agent import AgentActivities
    from activities.memory import MemoryActivities
    from aios.memory.messages import MemoryRecallRequest, MemoryRecallResult
    from aios.models.run import RecallRequest, RunInput, SlotRequest

# A busy agent's runs wait for a slot by retrying, which keeps them queued, never dropped.
SLOT_RETRY = RetryPolicy(
    initial_interval=timedelta(seconds=1), backoff_coefficient=1.5, maximum_interval=timedelta(seconds=15)
)
# One quick try in the workflow task; a busy agent's run then queues on the regular activity.
SLOT_FAST_TRY = RetryPolicy(maximum_attempts=1)
# How long a run waits for a memory holder (the next worker takes over within seconds).
HOLDER_WAIT = timedelta(seconds=30)
HOLDER_RETRY = RetryPolicy(maximum_attempts=3)


async def acquire_slot(slot: SlotRequest, *, fused: bool) -> None:
    if fused:
        try:
            await workflow.execute_local_activity_method(
                AgentActivities.acquire_slot,
                slot,
                start_to_close_timeout=BOOKKEEPING_TIMEOUT,
                retry_policy=SLOT_FAST_TRY,
            )
            return
        except FailureError as busy:
            if isinstance(busy, CancelledError) or isinstance(busy.cause, CancelledError):
                raise
    await workflow.execute_activity_method(
        AgentActivities.acquire_slot,
        slot,
        start_to_close_timeout=BOOKKEEPING_TIMEOUT,
        retry_policy=SLOT_RETRY,
    )


async def ask_the_holder(request: MemoryRecallRequest, here: MemoryRecallResult) -> MemoryRecallResult:
    """Recall on the worker that holds the store; without one in time, what this worker found.

    A holder that died hands over within seconds (aios/memory/holder.py); a run never waits
    longer than HOLDER_WAIT for one, and then goes on with its run history, as it did before.
    """
    assert here.holder_queue is not None
    try:
        return await workflow.execute_activity_method(
            MemoryActivities.recall,
            request,
            task_queue=here.holder_queue,
            schedule_to_start_timeout=HOLDER_WAIT,
            start_to_close_timeout=BOOKKEEPING_TIMEOUT,
            retry_policy=HOLDER_RETRY,
        )
    except ActivityError as failed:
        if isinstance(failed.cause, CancelledError):
            raise
        return here


async def recall(request: RunInput, *, fused: bool) -> list[str]:
    """Long-term memories about the task's subject, then earlier runs, within the budget."""
    manifest = request.manifest
    if workflow.patched(MEMORY_RECALL_PATCH):
        memory_recall = MemoryRecallRequest.for_task(
            agent=request.agent,
            task=request.task,
            top_k=manifest.memory.top_k,
            token_budget=manifest.memory.token_budget,
            as_of=workflow.now(),
            run_id=workflow.info().workflow_id,
        )
        if fused:
            recalled = await workflow.execute_local_activity_method(
                MemoryActivities.recall, memory_recall, start_to_close_timeout=BOOKKEEPING_TIMEOUT
            )
        else:
            recalled = await workflow.execute_activity_method(
                MemoryActivities.recall, memory_recall, start_to_close_timeout=BOOKKEEPING_TIMEOUT
            )
        if recalled.holder_queue and workflow.patched(MEMORY_HOLDER_PATCH):
            recalled = await ask_the_holder(memory_recall, recalled)
        return recalled.memories
    # Runs started before long-term memory recall only their run history.
    history = await workflow.execute_activity_method(
        AgentActivities.recall,
        RecallRequest(
            agent=request.agent,
            task=request.task,
            top_k=manifest.memory.top_k,
            token_budget=manifest.memory.token_budget,
        ),
        start_to_close_timeout=BOOKKEEPING_TIMEOUT,
    )
    return history.memories
