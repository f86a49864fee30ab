"""The aios side of the side-by-side benchmark: drive one agent run through `AiosClient`.

A run is started with `start_run`, approved with `decide` the moment it waits, and awaited
with `result`. "The moment it waits" is read from the run's history as a long poll (the
upsert of the documented `AiosState = waiting_approval` search attribute), so the driver
learns it as promptly as LangGraph's `ainvoke` returning its interrupt, without polling the
worker with queries.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

from temporalio.api.enums.v1 import EventType
from temporalio.api.history.v1 import HistoryEvent
from temporalio.converter import decode_typed_search_attributes

from aios.client import AiosClient
from aios.errors import DecisionRefused
from aios.models.manifest import AgentManifest
from aios.models.run import RunState, RunStatus
from aios.temporal.search_attributes import STATE_KEY
from bench.langgraph_common import APPROVER

RUN_TIMEOUT = 120.0  # seconds: a run that takes longer is a broken benchmark
DECIDE_ATTEMPTS = 5
CLOSED = {
    EventType.EVENT_TYPE_WORKFLOW_EXECUTION_COMPLETED,
    EventType.EVENT_TYPE_WORKFLOW_EXECUTION_FAILED,
    EventType.EVENT_TYPE_WORKFLOW_EXECUTION_TERMINATED,
    EventType.EVENT_TYPE_WORKFLOW_EXECUTION_CANCELED,
    EventType.EVENT_TYPE_WORKFLOW_EXECUTION_TIMED_OUT,
}


@dataclass(frozen=True)
class AiosLoop:
    """Runs the loop's manifests on a task queue that a worker polls."""

    client: AiosClient
    task_queue: str
    approval_delay: float = 0.0  # seconds a person takes to approve, once the run waits
    run_timeout: float = RUN_TIMEOUT

    async def start(self, manifest: AgentManifest, task: dict[str, str]) -> str:
        started = await self.client.start_run(
            manifest.name, task, manifest=manifest, task_queue=self.task_queue
        )
        return started.run_id

    async def finish(self, run_id: str, steps: int) -> RunState:
        """Approve the run's one approval, then wait for it to complete with every step executed."""
        async with asyncio.timeout(self.run_timeout):
            await self.approve_when_waiting(run_id)
            final = await self.client.result(run_id)
        executed = [step for step in final.steps if step.status == "executed"]
        if final.status is not RunStatus.COMPLETED or len(executed) != steps:
            raise RuntimeError(
                f"aios run {run_id} ended {final.status.value} with {len(executed)} of {steps} "
                f"steps executed: {final.outcome}"
            )
        return final

    async def run(self, manifest: AgentManifest, steps: int, label: str) -> None:
        await self.finish(await self.start(manifest, {"bench": label}), steps)

    async def approve_when_waiting(self, run_id: str) -> None:
        await self._until_waiting(run_id)
        if self.approval_delay:
            await asyncio.sleep(self.approval_delay)
        for attempt in range(DECIDE_ATTEMPTS):
            try:
                await self.client.decide(run_id, "approve", approver=APPROVER)
                return
            except DecisionRefused:
                # The state may be visible a moment before the gate takes decisions.
                if attempt == DECIDE_ATTEMPTS - 1:
                    raise
                await asyncio.sleep(0.01 * 2**attempt)

    async def _until_waiting(self, run_id: str) -> None:
        handle = self.client.handle(run_id)
        async for event in handle.fetch_history_events(wait_new_event=True):
            if _waiting(event):
                return
            if event.event_type in CLOSED:
                raise RuntimeError(f"aios run {run_id} closed without waiting for an approval")


def _waiting(event: HistoryEvent) -> bool:
    if event.event_type != EventType.EVENT_TYPE_UPSERT_WORKFLOW_SEARCH_ATTRIBUTES:
        return False
    attributes = event.upsert_workflow_search_attributes_event_attributes.search_attributes
    return decode_typed_search_attributes(attributes).get(STATE_KEY) == RunStatus.WAITING_APPROVAL.value
