"""The retention activity: apply the policy once, over Postgres, Qdrant and Temporal.

The workflow passes `as_of` from `workflow.now()`, so a retried attempt measures ages from the
same instant; every deletion is idempotent, so a retry finishes what a crashed attempt began
(its report then counts what the retry did).
"""

from __future__ import annotations

from temporalio import activity

from activities.deps import ActivityDeps
from aios.memory.retention import ApplyRetention, Retention, RetentionReport, TemporalRuns
from aios.memory.service import MemoryService


class RetentionActivities:
    def __init__(self, deps: ActivityDeps, memory: MemoryService | None = None) -> None:
        self._pool = deps.pool
        self._memory = memory if memory is not None else deps.memory
        self._policy = deps.settings.retention

    @activity.defn(name="retention.apply")
    async def apply(self, request: ApplyRetention) -> RetentionReport:
        # The worker's own client: deleting runs needs no second connection to Temporal.
        runs = TemporalRuns(activity.client(), progress=activity.heartbeat, pool=self._pool)
        retention = Retention(self._pool, memory=self._memory, runs=runs, progress=activity.heartbeat)
        policy = request.request.policy if request.request.policy is not None else self._policy
        return await retention.apply(policy, as_of=request.as_of, dry_run=request.request.dry_run)
