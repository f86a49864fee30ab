"""DispatchRun: how a Schedule or an event starts an agent run without skipping admission.

A Temporal Schedule can only start a workflow. Starting AgentRun directly would bypass the
daily budget, the kill switch and the canary, which live in admission (a database read and a
client call, so an activity). So a trigger starts this small workflow, whose activity hands the
request to admission and returns what came of it: started, skipped (recorded in the audit
trail) or duplicate. Its history is the trigger's receipt, visible in the Web UI.

A request without a run id gets this workflow's id without its `dispatch-` prefix: Temporal makes
a Schedule's action id unique per firing (`dispatch-<agent>.<schedule>-<fire time>`), so each
firing has one run id, and a retried admission finds its run started, never a second one.
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
# Waiting for the run to end is one long activity that heartbeats; a worker that dies hands it on.
AWAIT_HEARTBEAT = timedelta(seconds=30)
AWAIT_LONGEST = timedelta(days=30)
DISPATCH_PREFIX = "dispatch-"


@workflow.defn(name="DispatchRun")
class DispatchRunWorkflow:
    @workflow.run
    async def run(self, request: StartRequest) -> StartOutcome:
        if request.run_id is None:
            derived = workflow.info().workflow_id.removeprefix(DISPATCH_PREFIX)
            request = request.model_copy(update={"run_id": derived})
        if request.after is not None:
            await self._until_ended(request.after)
        outcome = await workflow.execute_activity_method(
            AdmissionActivities.start,
            request,
            start_to_close_timeout=ADMISSION_TIMEOUT,
            schedule_to_close_timeout=ADMISSION_DEADLINE,
            retry_policy=ADMISSION_RETRY,
        )
        if request.await_end and outcome.started:
            await self._until_ended(outcome.run_id)
        return outcome

    async def _until_ended(self, run_id: str) -> None:
        await workflow.execute_activity_method(
            AdmissionActivities.await_end,
            run_id,
            start_to_close_timeout=AWAIT_LONGEST,
            heartbeat_timeout=AWAIT_HEARTBEAT,
            retry_policy=ADMISSION_RETRY,
        )
