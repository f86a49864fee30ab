"""A run whose workflow task keeps failing is reported in one line, and resumes with fixed code.

A worker with a deliberately broken approval handler wedges a waiting run the moment it is
approved. `aios show` and `aios approvals` then say which run, the failure (decrypted), the
attempt and since when, and what to do, with no traceback; a worker with the real code
takes the run over and it completes with every effect once.
"""

from __future__ import annotations

import asyncio
import subprocess
import uuid

import pytest
from temporalio.client import Client

from aios.client import AiosClient
from aios.errors import RunStuck
from aios.models.run import RunStatus
from aios.settings import Settings
from tests.support.broken_workflows import BROKEN, BrokenApprovals
from tests.support.cli import run_aios
from tests.support.effect_server import EffectServer
from tests.support.env import child_env
from tests.support.manifests import refund_like_manifest
from tests.support.runs import wait_for_status
from workers.main import run_worker
from workflows.agent_run import AgentRunWorkflow
from workflows.registry import WORKFLOWS

pytestmark = pytest.mark.integration


def aios_cli(settings: Settings, *args: str) -> subprocess.CompletedProcess[str]:
    return run_aios(*args, env=child_env(settings, COLUMNS="250", AIOS_TASK_QUEUE=settings.task_queue))


async def wait_until_stuck(client: AiosClient, run_id: str, *, within: float = 30) -> RunStuck:
    deadline = asyncio.get_running_loop().time() + within
    while asyncio.get_running_loop().time() < deadline:
        try:
            await client.state(run_id)
        except RunStuck as stuck:
            return stuck
        await asyncio.sleep(0.2)
    raise AssertionError(f"{run_id} never got stuck")


async def test_a_stuck_run_is_reported_in_one_line_and_resumes_with_fixed_code(
    stack_settings: Settings, temporal_client: Client, effect_server: EffectServer
) -> None:
    queue = f"test-stuck-{uuid.uuid4().hex[:8]}"
    settings = stack_settings.model_copy(update={"task_queue": queue})
    client = AiosClient(temporal_client, settings)
    broken_workflows = [BrokenApprovals, *(cls for cls in WORKFLOWS if cls is not AgentRunWorkflow)]
    stop_broken = asyncio.Event()
    broken = asyncio.create_task(
        run_worker(settings, stop=stop_broken, task_queue=queue, workflows=broken_workflows)
    )
    manifest = refund_like_manifest(effect_server.url)
    started = await client.start_run(manifest.name, {"customer": "c-stuck", "amount": 250}, manifest=manifest)
    await wait_for_status(client, started.run_id, RunStatus.WAITING_APPROVAL)
    await client.signal_decision(started.run_id, "approve", {"approver": "alice"})

    stuck = await wait_until_stuck(client, started.run_id)
    assert f"RuntimeError: {BROKEN}" in stuck.failure and stuck.attempt >= 1 and stuck.since != "unknown"
    shown = await asyncio.to_thread(aios_cli, settings, "show", started.run_id)
    assert shown.returncode == RunStuck.exit_code, shown
    lines = shown.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in shown.stderr, shown.stderr
    assert f"run '{started.run_id}' is stuck" in lines[0] and BROKEN in lines[0], lines[0]
    assert "fix the worker code and restart the worker" in lines[0], lines[0]
    listed = await asyncio.to_thread(aios_cli, settings, "approvals")
    assert listed.returncode == 0 and "Traceback" not in listed.stderr, listed
    assert f"run '{started.run_id}' is stuck" in listed.stdout, listed.stdout

    stop_broken.set()
    await broken
    stop_fixed = asyncio.Event()
    fixed = asyncio.create_task(run_worker(settings, stop=stop_fixed, task_queue=queue))
    try:
        final = await client.result(started.run_id, within=120)
    finally:
        stop_fixed.set()
        await fixed
    assert final.status is RunStatus.COMPLETED
    payout = next(step for step in final.steps if step.action == "payout")
    assert (payout.status, payout.decided_by) == ("executed", "alice")
    assert effect_server.effects_for("/payout") == 1
    assert effect_server.duplicates() == 0
