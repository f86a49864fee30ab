"""The admission activity: a trigger's start goes through the same admission as `aios run`."""

from __future__ import annotations

import asyncio
import contextlib
from datetime import timedelta

from temporalio import activity
from temporalio.client import Client, WorkflowFailureError

from activities.deps import ActivityDeps
from aios.governance.admission import Admission
from aios.models.start import StartOutcome, StartRequest

HEARTBEAT_EVERY = timedelta(seconds=10)


class AdmissionActivities:
    def __init__(self, deps: ActivityDeps) -> None:
        self._deps = deps

    @activity.defn(name="admission.start")
    async def start(self, request: StartRequest) -> StartOutcome:
        """Admit and start; a retry after a crash finds the run id taken and says `duplicate`."""
        return await Admission(self._temporal(), self._deps.settings, self._deps.pool.connection).start(
            request
        )

    @activity.defn(name="admission.await_end")
    async def await_end(self, run_id: str) -> None:
        """Return once the run has ended, however it ended; heartbeats while it goes on."""
        waiting = asyncio.ensure_future(self._temporal().get_workflow_handle(run_id).result())
        try:
            while not waiting.done():
                activity.heartbeat()
                await asyncio.wait({waiting}, timeout=HEARTBEAT_EVERY.total_seconds())
            # Failed, cancelled or terminated is ended all the same.
            with contextlib.suppress(WorkflowFailureError):
                waiting.result()
        finally:
            waiting.cancel()

    def _temporal(self) -> Client:
        if self._deps.temporal is None:
            raise RuntimeError("this worker has no Temporal client for admission (workers/main.py sets it)")
        return self._deps.temporal
