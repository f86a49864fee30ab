"""DispatchRun: how a Schedule or an event starts an agent run without skipping admission.

A Temporal Schedule can only start a workflow. Starting AgentRun directly would bypass the
daily budget, the kill switch and the canary, which live in admission (a database read and a
client call, so an activity). So a trigger starts this small workflow, whose one activity hands
the request to admission and returns what came of it: started, skipped (recorded in the audit
trail) or duplicate. Its history is the trigger's receipt, visible in the Web UI.
"""

from __future__ import annotations

from datetime import timedelta

from temporalio import workflow
from temporalio.common import RetryPolicy

with workflow.unsafe.imports_passed_through():
    from activities.admission import AdmissionActivities
    from aios.models.start import StartOutcome, StartRequest

# Temporal or Postgres away for a while must not lose a firing: retried for up to a day.
ADMISSION_RETRY = RetryPolicy(initial_interval=timedelta(seconds=1), maximum_interval=timedelta(seconds=30))
ADMISSION_TIMEOUT = timedelta(seconds=30)
ADMISSION_DEADLINE = timedelta(days=1)


@workflow.defn(name="DispatchRun")
class DispatchRunWorkflow:
    @workflow.run
    async def run(self, request: StartRequest) -> StartOutcome:
        return await workflow.execute_activity_method(
            AdmissionActivities.start,
            request,
            start_to_close_timeout=ADMISSION_TIMEOUT,
            schedule_to_close_timeout=ADMISSION_DEADLINE,
            retry_policy=ADMISSION_RETRY,
        )
