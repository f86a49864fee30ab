"""Schedule triggers on the real dev server, through the doors an operator uses.

`AiosClient.apply` (what `aios agents apply` calls) makes a Temporal Schedule per trigger; the
Temporal CLI sees it; `aios schedules trigger` fires it now; the firing goes through admission
(DispatchRun), so the run carries its cause, a paused agent's firing is skipped and audited,
and a canary applies. Applying again changes nothing; a trigger removed from the manifest
takes its Schedule with it. A refused fire waits in the operator's inbox until a later fire
starts a run.
"""

from __future__ import annotations

import asyncio
import json
import subprocess
from datetime import timedelta
from typing import Any

from temporalio.client import Client

from aios.client import AiosClient
from aios.governance.admission import AGENT_RUN
from aios.models.manifest import AgentManifest
from aios.models.run import RunStatus
from aios.models.triggers import ScheduleTrigger, TriggersSpec
from aios.settings import Settings
from aios.stack.temporal import find_binary
from aios.triggers.schedules import schedule_id
from tests.support.cli import run_aios
from tests.support.env import child_env
from tests.support.inbox import item_for
from tests.support.manifests import noop_manifest
from tests.support.runs import audit_outcomes, runs_caused_by, wait_for_status

HOURLY = ScheduleTrigger(name="hourly", every=timedelta(hours=1), task={"subject": "ledger"})


def scheduled(trigger: ScheduleTrigger = HOURLY, **fields: Any) -> AgentManifest:
    return noop_manifest(1, triggers=TriggersSpec(schedule=[trigger]), **fields)


def temporal_cli(settings: Settings, *args: str) -> subprocess.CompletedProcess[str]:
    binary = find_binary(settings)
    assert binary is not None, "the Temporal CLI is needed (make setup puts it in .aios/bin)"
    address = ["--address", settings.temporal_address, "--namespace", settings.temporal_namespace]
    return subprocess.run(
        [str(binary), *args, *address], capture_output=True, text=True, timeout=60, check=False
    )


def aios_on_queue(client: AiosClient, *args: str) -> subprocess.CompletedProcess[str]:
    """`aios ARGS` whose schedules start runs on the test's own task queue."""
    env = child_env(client.settings, COLUMNS="250", AIOS_TASK_QUEUE=client.settings.task_queue)
    return run_aios(*args, env=env)


async def dispatch_outcomes(client: Client, manifest: AgentManifest, *, expected: int = 1) -> list[str]:
    """The outcomes of the schedule's DispatchRun workflows, once `expected` have completed."""
    query = f"WorkflowType = 'DispatchRun' AND WorkflowId STARTS_WITH 'dispatch-{manifest.name}.'"
    for _ in range(150):
        listed = [execution async for execution in client.list_workflows(query)]
        done = [execution for execution in listed if execution.close_time is not None]
        if len(done) >= expected:
            results = [await client.get_workflow_handle(execution.id).result() for execution in done]
            return [result["outcome"] for result in results]
        await asyncio.sleep(0.2)
    raise AssertionError(f"{expected} dispatch(es) of {manifest.name} expected to complete")


async def test_apply_creates_the_schedule_and_a_trigger_starts_a_run_through_admission(
    aios_client: AiosClient, temporal_client: Client
) -> None:
    manifest = scheduled()
    applied = await aios_client.apply([manifest])
    name = f"{manifest.name}/hourly"
    assert applied.created == [name]

    described = temporal_cli(
        aios_client.settings,
        "schedule",
        "describe",
        "--schedule-id",
        schedule_id(manifest.name, "hourly"),
        "-o",
        "json",
    )
    assert described.returncode == 0, described.stderr
    assert (
        json.loads(described.stdout)["schedule"]["action"]["startWorkflow"]["workflowType"]["name"]
        == "DispatchRun"
    )

    fired = aios_on_queue(aios_client, "schedules", "trigger", name)
    assert fired.returncode == 0, fired.stderr

    (run_id,) = await runs_caused_by(temporal_client, f"schedule:{name}")
    state = await wait_for_status(aios_client, run_id, RunStatus.COMPLETED)
    assert state.agent == manifest.name
    assert (await audit_outcomes(aios_client.settings, run_id))[0] == (f"schedule:{name}", "start", "started")

    listed = aios_on_queue(aios_client, "schedules", "list", "--json")
    assert listed.returncode == 0, listed.stderr
    (view,) = [view for view in json.loads(listed.stdout) if view["name"] == name]
    assert view["paused"] is False and view["overlap"] == "skip" and view["next_fires"]


async def test_apply_is_idempotent_keeps_a_pause_and_deletes_a_removed_trigger(
    aios_client: AiosClient,
) -> None:
    manifest = scheduled()
    name = f"{manifest.name}/hourly"
    await aios_client.apply([manifest])
    await aios_client.pause_schedule(name, note="holiday")

    again = await aios_client.apply([manifest])

    assert (again.created, again.updated, again.deleted) == ([], [name], [])
    (view,) = [view for view in await aios_client.schedules() if view.name == name]
    assert view.paused and view.note == "holiday"

    removed = await aios_client.apply([manifest.model_copy(update={"triggers": TriggersSpec()})])
    assert removed.deleted == [name]
    assert name not in [view.name for view in await aios_client.schedules()]
    gone = aios_on_queue(aios_client, "schedules", "trigger", name)
    assert gone.returncode == 3 and f"no schedule {name!r}" in gone.stderr, gone.stderr


async def test_a_paused_agent_s_firing_is_skipped_and_recorded(
    aios_client: AiosClient, temporal_client: Client
) -> None:
    manifest = scheduled()
    name = f"{manifest.name}/hourly"
    await aios_client.apply([manifest])
    await aios_client.pause_agent(manifest.name, by="test")

    await aios_client.trigger_schedule(name)

    assert await dispatch_outcomes(temporal_client, manifest) == ["skipped"]
    query = f"WorkflowType = '{AGENT_RUN}' AND AiosCause = 'schedule:{name}'"
    assert [execution.id async for execution in temporal_client.list_workflows(query)] == []

    # The refused fire waits in the operator's inbox; its command, once the agent is resumed,
    # fires again and the run that starts settles the item.
    item = await item_for(aios_client, f"skipped_fire:{name}")
    assert item is not None and "paused" in item.context["reason"], item
    await aios_client.resume_agent(manifest.name, by="test")
    fired = aios_on_queue(aios_client, *item.command.split()[1:])
    assert fired.returncode == 0, fired.stderr
    (run_id,) = await runs_caused_by(temporal_client, f"schedule:{name}")
    await wait_for_status(aios_client, run_id, RunStatus.COMPLETED)
    assert await item_for(aios_client, f"skipped_fire:{name}", present=False) is None
    await aios_client.apply([manifest.model_copy(update={"triggers": TriggersSpec()})])


async def test_a_canary_applies_to_a_scheduled_run(aios_client: AiosClient, temporal_client: Client) -> None:
    manifest = scheduled()
    candidate = manifest.model_copy(update={"description": "candidate"})
    name = f"{manifest.name}/hourly"
    await aios_client.apply([manifest])
    await aios_client.start_canary(candidate, share=1.0)

    await aios_client.trigger_schedule(name)

    (run_id,) = await runs_caused_by(temporal_client, f"schedule:{name}")
    state = await wait_for_status(aios_client, run_id, RunStatus.COMPLETED)
    assert state.manifest_version == candidate.version != manifest.version
    await aios_client.apply([manifest.model_copy(update={"triggers": TriggersSpec()})])


async def test_a_firing_over_the_daily_budget_is_skipped(
    aios_client: AiosClient, temporal_client: Client
) -> None:
    manifest = scheduled(budget={"tokens_per_day": 1})
    name = f"{manifest.name}/hourly"
    await aios_client.apply([manifest])

    await aios_client.trigger_schedule(name)

    assert await dispatch_outcomes(temporal_client, manifest) == ["skipped"]
    query = f"WorkflowType = '{AGENT_RUN}' AND AiosCause = 'schedule:{name}'"
    assert [execution.id async for execution in temporal_client.list_workflows(query)] == []
    await aios_client.apply([manifest.model_copy(update={"triggers": TriggersSpec()})])
