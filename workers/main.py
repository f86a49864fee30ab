"""The aios worker: one process that hosts every workflow and activity.

Wiring lives here and only here: client (data converter, tracing), sandbox passthrough,
the registries of workflows and activities, and graceful shutdown on SIGTERM/SIGINT.
"""

from __future__ import annotations

import asyncio
import logging
import signal
from datetime import timedelta

from temporalio.worker import Worker
from temporalio.worker.workflow_sandbox import SandboxedWorkflowRunner, SandboxRestrictions

from activities import build_activities
from activities.deps import close_deps, open_deps
from aios.settings import Settings
from aios.telemetry import configure_tracing
from aios.temporal_client import connect
from workflows import WORKFLOWS

log = logging.getLogger("aios.worker")

# The sandbox re-imports every module it does not pass through on each workflow run;
# passing our pure model modules and pydantic through keeps start-up cost flat.
PASSTHROUGH_MODULES = ("aios.models", "pydantic", "pydantic_core", "annotated_types")


def workflow_runner() -> SandboxedWorkflowRunner:
    restrictions = SandboxRestrictions.default.with_passthrough_modules(*PASSTHROUGH_MODULES)
    return SandboxedWorkflowRunner(restrictions=restrictions)


async def run_worker(
    settings: Settings,
    *,
    stop: asyncio.Event | None = None,
    task_queue: str | None = None,
) -> None:
    """Run until `stop` is set, or until SIGTERM/SIGINT when no event is given."""
    configure_tracing("aios-worker")
    client = await connect(settings)
    deps = await open_deps(settings)
    stop_event = stop if stop is not None else _stop_on_signals()
    try:
        worker = Worker(
            client,
            task_queue=task_queue or settings.task_queue,
            workflows=WORKFLOWS,
            activities=build_activities(deps),
            workflow_runner=workflow_runner(),
            graceful_shutdown_timeout=timedelta(seconds=10),
        )
        async with worker:
            log.info("worker polling task queue %s", task_queue or settings.task_queue)
            await stop_event.wait()
            log.info("shutting down: finishing in-flight activities")
    finally:
        await close_deps(deps)


def _stop_on_signals() -> asyncio.Event:
    event = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, event.set)
    return event
