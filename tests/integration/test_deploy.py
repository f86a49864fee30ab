"""A deploy of changed workflow code while runs wait for approval (Worker Deployments).

Worker v1 starts runs that wait at the gate. Worker v2 runs AgentRun with an unpatched change
(a timer before the first command: replayed on an old history it is a non-determinism error)
and is promoted through the `aios` CLI. The old runs, approved, finish on v1; new runs start on
v2; `aios deploy status` shows both, and `aios deploy rollback` makes v1 current again.
"""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import AsyncIterator, Sequence

import pytest
from temporalio.api.enums.v1 import EventType
from temporalio.client import Client

from aios.client import AiosClient
from aios.deploy.versions import Deployments
from aios.models.run import RunStatus
from aios.settings import Settings
from tests.replay.variants import UnpatchedExtraWait
from tests.support.cli import run_aios
from tests.support.effect_server import EffectServer
from tests.support.env import child_env
from tests.support.manifests import refund_like_manifest
from tests.support.runs import wait_for_status
from workers.main import run_worker
from workflows.registry import WORKFLOWS

pytestmark = pytest.mark.integration
OLD_RUNS = 2


@contextlib.asynccontextmanager
async def versioned_worker(
    settings: Settings, build_id: str, workflows: Sequence[type] = WORKFLOWS
) -> AsyncIterator[None]:
    stop = asyncio.Event()
    versioned = settings.model_copy(update={"worker_build_id": build_id})
    worker = asyncio.create_task(run_worker(versioned, stop=stop, workflows=workflows))
    try:
        yield
    finally:
        stop.set()
        await worker


def _changed_code() -> list[type]:
    return [UnpatchedExtraWait if flow.__name__ == "AgentRunWorkflow" else flow for flow in WORKFLOWS]


async def _build_ids(temporal: Client, run_id: str) -> set[str]:
    """The build ids of the workers that completed the run's workflow tasks."""
    seen = set()
    async for event in temporal.get_workflow_handle(run_id).fetch_history_events():
        if event.event_type == EventType.EVENT_TYPE_WORKFLOW_TASK_COMPLETED:
            seen.add(event.workflow_task_completed_event_attributes.deployment_version.build_id)
    return seen


async def _opens_with_a_timer(temporal: Client, run_id: str) -> bool:
    """True when the run's first command is a timer: the changed code's (the old code's is not)."""
    events = [e.event_type async for e in temporal.get_workflow_handle(run_id).fetch_history_events()]
    first_command = events[events.index(EventType.EVENT_TYPE_WORKFLOW_TASK_COMPLETED) + 1]
    return first_command == EventType.EVENT_TYPE_TIMER_STARTED


async def _polling(deployments: Deployments, build_id: str) -> None:
    """Wait until the new workers' version is known (its first poll)."""
    for _ in range(120):
        if any(v.build_id == build_id for v in (await deployments.describe()).versions):
            return
        await asyncio.sleep(0.25)
    raise AssertionError(f"version {build_id} never polled")


def _deploy(settings: Settings, *args: str) -> str:
    env = child_env(settings, AIOS_WORKER_DEPLOYMENT=settings.worker_deployment, COLUMNS="200")
    done = run_aios("deploy", *args, env=env)
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout


async def test_old_runs_finish_on_their_version_new_runs_start_on_the_new_one(
    stack_settings: Settings, temporal_client: Client, task_queue: str, effect_server: EffectServer
) -> None:
    name = f"deploy-{uuid.uuid4().hex[:6]}"
    settings = stack_settings.model_copy(update={"task_queue": task_queue, "worker_deployment": name})
    client = AiosClient(temporal_client, settings)
    manifest = refund_like_manifest(effect_server.url)
    task = {"customer": "c-deploy", "amount": 500}  # over 100: the payout waits for approval

    async with versioned_worker(settings, "v1"):  # the first version becomes current by itself
        old = [
            (await client.start_run(manifest.name, task, manifest=manifest)).run_id for _ in range(OLD_RUNS)
        ]
        for run_id in old:
            await wait_for_status(client, run_id, RunStatus.WAITING_APPROVAL, within=60)

        async with versioned_worker(settings, "v2", _changed_code()):
            await _polling(Deployments(temporal_client, name), "v2")
            promoted = await asyncio.to_thread(_deploy, settings, "promote", "v2")
            assert "current version: v2" in promoted
            status = await asyncio.to_thread(_deploy, settings, "status")
            assert "current v2" in status and "v1" in status and "draining" in status, status

            for run_id in old:
                await client.decide(run_id, "approve", approver="alice")
            for run_id in old:
                final = await asyncio.wait_for(client.result(run_id), timeout=90)
                assert final.status is RunStatus.COMPLETED, final.outcome
                assert await _build_ids(temporal_client, run_id) == {"v1"}
                assert not await _opens_with_a_timer(temporal_client, run_id)

            new = await client.start_run(manifest.name, {**task, "amount": 50}, manifest=manifest)
            final = await asyncio.wait_for(client.result(new.run_id), timeout=90)
            assert final.status is RunStatus.COMPLETED, final.outcome
            assert await _build_ids(temporal_client, new.run_id) == {"v2"}
            assert await _opens_with_a_timer(temporal_client, new.run_id)

            rolled = await asyncio.to_thread(_deploy, settings, "rollback")
            assert "new runs start on v1" in rolled
