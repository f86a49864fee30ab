"""The aios worker: one process that hosts every workflow and activity.

Wiring lives here and only here: client (data converter, tracing), sandbox passthrough,
the registries of workflows and activities, one extra queue per connector (so a rate limit
holds across all workers), breaker health reports, and graceful shutdown on SIGTERM/SIGINT.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import socket
from collections.abc import Sequence
from contextlib import AsyncExitStack
from datetime import timedelta

from temporalio.client import Client
from temporalio.worker import Worker
from temporalio.worker.workflow_sandbox import SandboxedWorkflowRunner, SandboxRestrictions

from activities import build_activities
from activities.actions import ActionActivities
from activities.deps import ActivityDeps, close_deps, open_deps
from aios.events.bus import EventBus
from aios.governance.slots import sweep as sweep_slots
from aios.ledger import health
from aios.observability.metrics import install_metrics
from aios.observability.telemetry import configure_tracing
from aios.settings import Settings
from aios.temporal.connection import connect
from aios.temporal.queues import connector_queue
from aios.temporal.redaction import install_redaction
from connectors.breaker import breaker_states
from workers.deployment import adopt_first_version, deployment_config
from workers.memory import MemoryQueue
from workflows.registry import WORKFLOWS

log = logging.getLogger("aios.worker")

# The sandbox re-imports every module it does not pass through on each workflow run;
# passing our pure model modules and pydantic through keeps start-up cost flat.
PASSTHROUGH_MODULES = ("aios.models", "aios.memory", "pydantic", "pydantic_core", "annotated_types")
# Our own workflow code too, imported once per process instead of once per run: it is
# deterministic by construction, which tests/unit/test_workflow_determinism.py reads from its
# source (the sandbox's run-time guards no longer see inside it), and the replay tests replay
# every recorded history both ways (docs/ARCHITECTURE.md, decision 3).
OWN_WORKFLOW_CODE = "workflows"
HEALTH_REPORT_EVERY = 5.0
SHUTDOWN_GRACE = timedelta(seconds=10)


def workflow_runner(*, strict: bool = False) -> SandboxedWorkflowRunner:
    """The sandbox the worker runs workflows in; `strict` re-imports `workflows` per run, so the
    sandbox's run-time guards watch our own code as well (the replay tests use both)."""
    passed = PASSTHROUGH_MODULES if strict else (*PASSTHROUGH_MODULES, OWN_WORKFLOW_CODE)
    return SandboxedWorkflowRunner(restrictions=SandboxRestrictions.default.with_passthrough_modules(*passed))


async def run_worker(
    settings: Settings,
    *,
    stop: asyncio.Event | None = None,
    task_queue: str | None = None,
    workflows: Sequence[type] = WORKFLOWS,
) -> None:
    """Run until `stop` is set, or until SIGTERM/SIGINT when no event is given.

    `workflows` is for tests that run a variant of a workflow (a deliberately broken one).
    """
    install_redaction(settings)
    configure_tracing("aios-worker", trace_file=settings.resolved_trace_file)
    queue = task_queue or settings.task_queue
    deps = await open_deps(settings, elect=True)
    # Before connecting: Temporal's runtime metrics come from the runtime the client is built on.
    metrics = install_metrics(settings, deps.pool)
    client = await connect(settings)
    deps.temporal = client
    stop_event = stop if stop is not None else _stop_on_signals()
    worker_id = f"{socket.gethostname()}:{os.getpid()}:{queue}"
    try:
        async with AsyncExitStack() as workers:
            for worker in _workers(client, deps, settings, queue, workflows):
                await workers.enter_async_context(worker)
            reporter = asyncio.create_task(_report_health(deps, worker_id, stop_event))
            sweeper = asyncio.create_task(_sweep_slots(deps, client, settings.slot_sweep_seconds, stop_event))
            dispatcher = asyncio.create_task(_dispatch_pending_events(deps, client, settings, stop_event))
            adopting = asyncio.create_task(adopt_first_version(client, settings))
            memory_queue = MemoryQueue(client, deps, settings.memory_takeover_seconds)
            memory = asyncio.create_task(memory_queue.serve(stop_event))
            log.info("worker polling task queue %s and one queue per connector", queue)
            await stop_event.wait()
            log.info("shutting down: finishing in-flight activities")
            await reporter
            await sweeper
            await dispatcher
            await memory
            await adopting
    finally:
        await metrics.close()
        await close_deps(deps)


def _workers(
    client: Client, deps: ActivityDeps, settings: Settings, queue: str, workflows: Sequence[type]
) -> list[Worker]:
    deployment = deployment_config(settings)
    main = Worker(
        client,
        task_queue=queue,
        workflows=workflows,
        activities=build_activities(deps),
        workflow_runner=workflow_runner(),
        max_cached_workflows=settings.worker_cached_runs,
        max_concurrent_workflow_tasks=settings.worker_workflow_tasks,
        graceful_shutdown_timeout=SHUTDOWN_GRACE,
        deployment_config=deployment,
    )
    execute = ActionActivities(deps, deps.connectors).execute
    per_connector = [
        Worker(
            client,
            task_queue=connector_queue(queue, name),
            activities=[execute],
            # Enforced by the server for the whole queue: the limit holds across all workers.
            max_task_queue_activities_per_second=settings.connector_rate_limits.get(name),
            graceful_shutdown_timeout=SHUTDOWN_GRACE,
            deployment_config=deployment,
        )
        for name in deps.connectors
    ]
    return [main, *per_connector]


async def _report_health(deps: ActivityDeps, worker_id: str, stop: asyncio.Event) -> None:
    """Write the breakers' state to Postgres every few seconds, for `aios status`."""
    while not stop.is_set():
        try:
            async with deps.pool.connection() as conn:
                await health.report(conn, worker_id, breaker_states(deps.connectors.values()))
        except Exception:  # health reports must never take the worker down
            log.warning("could not report connector health", exc_info=True)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), HEALTH_REPORT_EVERY)
    with contextlib.suppress(Exception):
        async with deps.pool.connection() as conn:
            await health.forget_worker(conn, worker_id)


async def _sweep_slots(deps: ActivityDeps, client: Client, every: float, stop: asyncio.Event) -> None:
    """Free the slots of runs that ended without releasing them (see aios/governance/slots.py)."""
    while not stop.is_set():
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), every)
        if stop.is_set():
            return
        try:
            async with deps.pool.connection() as conn:
                freed = await sweep_slots(conn, client) or []
            for agent, run_id in freed:
                log.info("freed the slot of %s (agent %s): the run has ended", run_id, agent)
        except Exception:  # a sweep must never take the worker down; the next one tries again
            log.warning("could not sweep concurrency slots", exc_info=True)


async def _dispatch_pending_events(
    deps: ActivityDeps, client: Client, settings: Settings, stop: asyncio.Event
) -> None:
    """Dispatch event deliveries whose sender died after keeping them (see aios/events/bus.py)."""
    bus = EventBus(client, settings, deps.pool.connection)
    while not stop.is_set():
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), settings.slot_sweep_seconds)
        if stop.is_set():
            return
        try:
            dispatched = await bus.dispatch_pending()
            if dispatched:
                log.info("dispatched %d event deliveries left pending", dispatched)
        except Exception:  # a sweep must never take the worker down; the next one tries again
            log.warning("could not dispatch pending event deliveries", exc_info=True)


def _stop_on_signals() -> asyncio.Event:
    event = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, event.set)
    return event
