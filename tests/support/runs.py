"""Runs in tests: wait for a state (poll the `state` query, bounded); read every history of a run."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from temporalio.client import Client, WorkflowHistory
from temporalio.service import RPCError, RPCStatusCode
from temporalio.worker import Replayer

from aios.client import AiosClient
from aios.errors import AiosError, RunNotFound, RunStuck, WaitTimedOut
from aios.governance import audit
from aios.governance.subjects import SubjectVault
from aios.models.run import RunState, RunStatus
from aios.settings import Settings
from aios.temporal.connection import data_converter
from aios.temporal.server_errors import TASK_FAILING
from workers.main import workflow_runner
from workflows.registry import WORKFLOWS

POLL_SECONDS = 0.1


# What a query answers while a run cannot answer *yet*: not started (or not visible) yet, no
# worker took the query in time (a worker restarting), its workflow task being retried (a
# fault test's crashed worker). Anything else fails the test with its own message.
NOT_YET = (RunNotFound, WaitTimedOut, RunStuck)


def _not_yet(error: AiosError) -> bool:
    if isinstance(error, NOT_YET):
        return True
    # The server refuses a query until the run's first workflow task is done ("not ready"),
    # and a query that meets a failing workflow task before its second attempt.
    cause = error.__cause__
    return isinstance(cause, RPCError) and (
        cause.status == RPCStatusCode.FAILED_PRECONDITION or TASK_FAILING in cause.message
    )


async def wait_for_state(
    client: AiosClient, run_id: str, condition: Callable[[RunState], bool], *, within: float = 30
) -> RunState:
    """Poll the run's `state` query until `condition` holds; AssertionError after `within` seconds.

    Only the answers in NOT_YET mean "ask again"; any other error fails the test as it is.
    """
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within
    last: RunState | AiosError | None = None
    while (left := deadline - loop.time()) > 0:
        try:
            last = await asyncio.wait_for(client.state(run_id), left)
        except AiosError as error:
            if not _not_yet(error):
                raise
            last = error
        except TimeoutError:  # the query itself outlived the deadline (no worker answered)
            break
        if isinstance(last, RunState) and condition(last):
            return last
        await asyncio.sleep(POLL_SECONDS)
    raise AssertionError(f"{run_id} never reached the expected state within {within:g}s; last seen: {last}")


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


async def audit_outcomes(settings: Settings, run_id: str) -> list[tuple[str, str, str]]:
    """(actor, action, outcome) of each of the run's audit rows, in the run's order."""
    return [(row.actor, row.action, row.outcome) for row in await audit_story(settings, run_id)]


async def runs_caused_by(client: Client, cause: str, *, expected: int = 1) -> list[str]:
    """The AgentRun ids whose AiosCause is `cause`, once visibility lists `expected` of them."""
    query = f"WorkflowType = 'AgentRun' AND AiosCause = '{cause}'"
    found: list[str] = []
    for _ in range(150):
        found = [execution.id async for execution in client.list_workflows(query)]
        if len(found) >= expected:
            return found
        await asyncio.sleep(0.2)
    raise AssertionError(f"{expected} run(s) caused by {cause} expected; visibility lists {found}")


async def replay_run(client: AiosClient, run_id: str) -> None:
    """The run's history replays on today's code, in the worker's sandbox and converter."""
    history = await client.handle(run_id).fetch_history()
    await Replayer(
        workflows=WORKFLOWS, data_converter=data_converter(client.settings), workflow_runner=workflow_runner()
    ).replay_workflow(history)
