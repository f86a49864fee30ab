"""The admission activity: a trigger's start goes through the same admission as `aios run`."""

from __future__ import annotations

from temporalio import activity

from activities.deps import ActivityDeps
from aios.governance.admission import Admission
from aios.models.start import StartOutcome, StartRequest


class AdmissionActivities:
    def __init__(self, deps: ActivityDeps) -> None:
        self._deps = deps

    @activity.defn(name="admission.start")
    async def start(self, request: StartRequest) -> StartOutcome:
        """Admit and start; a retry after a crash finds the run id taken and says `duplicate`."""
        temporal = self._deps.temporal
        if temporal is None:
            raise RuntimeError("this worker has no Temporal client for admission (workers/main.py sets it)")
        return await Admission(temporal, self._deps.settings, self._deps.pool.connection).start(request)
