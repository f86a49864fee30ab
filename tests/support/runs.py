"""Runs in tests: wait for a state (poll the `state` query, bounded); read every history of a run."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from temporalio.client import Client, WorkflowHistory

from aios import audit
from aios.client import AiosClient
from aios.models.run import RunState, RunStatus
from aios.settings import Settings
from aios.subjects import SubjectVault

POLL_SECONDS = 0.1


async def wait_for_state(
    client: AiosClient, run_id: str, condition: Callable[[RunState], bool], *, within: float = 30
) -> RunState:
    deadline = asyncio.get_running_loop().time() + within
    last: RunState | None = None
    while asyncio.get_running_loop().time() < deadline:
        try:
            last = await client.state(run_id)
        except Exception:  # the run may not have had its first workflow task yet
            last = None
        if last is not None and condition(last):
            return last
        await asyncio.sleep(POLL_SECONDS)
    raise AssertionError(f"{run_id} never reached the expected state; last seen: {last}")


async def wait_for_status(
    client: AiosClient, run_id: str, status: RunStatus, *, within: float = 30
) -> RunState:
    return await wait_for_state(client, run_id, lambda state: state.status is status, within=within)


async def chain_histories(client: Client, workflow_id: str) -> list[WorkflowHistory]:
    """Every history of the workflow id, oldest first (continue-as-new keeps the id)."""
    executions = [execution async for execution in client.list_workflows(f"WorkflowId = '{workflow_id}'")]
    executions.sort(key=lambda execution: execution.start_time)
    return [
        await client.get_workflow_handle(workflow_id, run_id=execution.run_id).fetch_history()
        for execution in executions
    ]


async def audit_story(settings: Settings, run_id: str) -> list[audit.AuditRow]:
    """The run's audit rows in the order it recorded them, sealed values opened with its key."""
    vault = SubjectVault.for_settings(settings)
    return await audit.story_from_database(settings.resolved_database_url, run_id, vault=vault)
