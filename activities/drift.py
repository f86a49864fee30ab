"""The drift check's activity: read the runs, compare, record the alarms (idempotent: an
alarm's event key names agent, version, comparison and day)."""

from __future__ import annotations

from temporalio import activity

from activities.deps import ActivityDeps
from aios.drift.check import check_drift
from aios.models.drift import DriftCheckInput, DriftReport


class DriftActivities:
    def __init__(self, deps: ActivityDeps) -> None:
        self._pool = deps.pool

    @activity.defn(name="drift.check")
    async def check(self, request: DriftCheckInput) -> DriftReport:
        async with self._pool.connection() as conn:
            return await check_drift(conn, as_of=request.as_of, windows=request.windows)
