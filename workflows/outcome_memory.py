"""A run's end: what happened is remembered (aios/memory/outcomes.py composes it), so the next
run about the same subject recalls it. Started beside the run's last record, never failing it:
a memory that cannot be written (no store, a store gone) leaves the run as it ended. Runs from
before outcome memory (versions.py, outcome-memory) and shadow runs remember nothing.
"""

from __future__ import annotations

import asyncio
from datetime import timedelta

from temporalio import workflow
from temporalio.common import RetryPolicy
from temporalio.exceptions import ActivityError

from workflows.bookkeeping import BOOKKEEPING_TIMEOUT
from workflows.versions import OUTCOME_MEMORY_PATCH

with workflow.unsafe.imports_passed_through():
    from activities.memory import MemoryActivities
    from aios.governance.subjects import run_subject
    from aios.memory.messages import RememberRequest
    from aios.memory.outcomes import outcome_memories
    from aios.models.manifest import AgentManifest
    from aios.models.run import RunInput, RunState

REMEMBER_RETRY = RetryPolicy(initial_interval=timedelta(seconds=1), maximum_attempts=3)


def start_remembering(
    state: RunState, manifest: AgentManifest, request: RunInput
) -> asyncio.Future[None] | None:
    """Start writing the run's memories; None when there is nothing to remember."""
    if request.mode != "live" or not workflow.patched(OUTCOME_MEMORY_PATCH):
        return None
    requests = outcome_memories(state, manifest, run_subject(request.task))
    return asyncio.ensure_future(_remember_all(requests)) if requests else None


async def _remember_all(requests: list[RememberRequest]) -> None:
    for request in requests:
        try:
            await workflow.execute_activity_method(
                MemoryActivities.remember,
                request,
                start_to_close_timeout=BOOKKEEPING_TIMEOUT,
                retry_policy=REMEMBER_RETRY,
            )
        except ActivityError as failure:
            workflow.logger.warning("memory %s not written: %s", request.key, failure.cause)
            return
