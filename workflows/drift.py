"""DriftCheck: compare every agent version's last day with its baseline, once (the `aios-drift`
Schedule starts it daily; aios/drift/schedule.py).

Deterministic: the instant the windows end at comes from `workflow.now()`, so a retried
activity judges the same runs and writes the same alarm keys; the work is one activity.
"""

from __future__ import annotations

from datetime import timedelta

from temporalio import workflow
from temporalio.common import RetryPolicy

with workflow.unsafe.imports_passed_through():
    from activities.drift import DriftActivities
    from aios.models.drift import DRIFT_WORKFLOW, DriftCheckInput, DriftCheckRequest, DriftReport

CHECK_TIMEOUT = timedelta(minutes=10)
RETRY = RetryPolicy(
    initial_interval=timedelta(seconds=5), maximum_interval=timedelta(minutes=2), maximum_attempts=10
)


@workflow.defn(name=DRIFT_WORKFLOW)
class DriftCheckWorkflow:
    @workflow.run
    async def run(self, request: DriftCheckRequest) -> DriftReport:
        return await workflow.execute_activity_method(
            DriftActivities.check,
            DriftCheckInput(windows=request.windows, as_of=workflow.now()),
            start_to_close_timeout=CHECK_TIMEOUT,
            retry_policy=RETRY,
        )
