"""Retention: apply the retention policy once (AIOS_RETENTION); a daily Temporal Schedule starts
it (`aios memory retention --schedule`, aios.memory.retention.create_retention_schedule).

Deterministic: the instant ages are measured from comes from `workflow.now()`; the work is one
heartbeating activity, retried until done (every deletion in it is idempotent).
"""

from __future__ import annotations

from datetime import timedelta

from temporalio import workflow
from temporalio.common import RetryPolicy

with workflow.unsafe.imports_passed_through():
    from activities.retention import RetentionActivities
    from aios.memory.retention import RETENTION_WORKFLOW, ApplyRetention, RetentionReport, RetentionRequest

PASS_TIMEOUT = timedelta(hours=2)  # a first pass over a long history deletes many runs one by one
HEARTBEAT_TIMEOUT = timedelta(minutes=2)
RETRY = RetryPolicy(
    initial_interval=timedelta(seconds=5), maximum_interval=timedelta(minutes=5), maximum_attempts=10
)


@workflow.defn(name=RETENTION_WORKFLOW)
class RetentionWorkflow:
    @workflow.run
    async def run(self, request: RetentionRequest) -> RetentionReport:
        return await workflow.execute_activity_method(
            RetentionActivities.apply,
            ApplyRetention(request=request, as_of=workflow.now()),
            start_to_close_timeout=PASS_TIMEOUT,
            heartbeat_timeout=HEARTBEAT_TIMEOUT,
            retry_policy=RETRY,
        )
