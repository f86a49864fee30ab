"""Delegation on the real dev server: a `connector: agent` action runs another agent as a child.

The child's manifest is found by name (a YAML file in this test's agents directory), its own
policy and approvals apply, its spend counts in its parent's budget, its effects are undone when
its parent compensates, and runaway delegation is refused with one line in the audit trail.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from temporalio.client import Client, WorkflowExecutionStatus

from aios.client import AiosClient
from aios.governance.manifests import MANIFEST_DIR_VARIABLE
from aios.models.delegation import child_run_id
from aios.models.manifest import ActionSpec, AgentManifest, BudgetSpec, ModelSpec, PolicySpec, RiskClass
from aios.models.run import RunStatus
from aios.settings import Settings
from aios.temporal.search_attributes import CAUSE_KEY
from tests.support.cli import run_aios
from tests.support.effect_server import EffectServer
from tests.support.manifests import http_action, noop_manifest, refund_like_manifest, unique_agent
from tests.support.runs import audit_story, replay_run, wait_for_status
from workers.main import run_worker

RESULT_WITHIN = 90


@pytest.fixture
def agents_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Where admission finds a child's manifest by name, for the worker in this test."""
    monkeypatch.setenv(MANIFEST_DIR_VARIABLE, str(tmp_path))
    return tmp_path


def on_disk(folder: Path, manifest: AgentManifest) -> AgentManifest:
    content = manifest.model_dump(mode="json")
    (folder / f"{manifest.name}.yaml").write_text(yaml.safe_dump(content, sort_keys=False))
    return manifest


def delegating_manifest(
    child: str, *, then: dict[str, ActionSpec] | None = None, **fields: Any
) -> AgentManifest:
    """delegate (low risk: the parent's policy lets it through), then the actions in `then`."""
    delegate = ActionSpec(connector="agent", agent=child, risk=RiskClass.LOW, params=["customer", "amount"])
    return AgentManifest.model_validate(
        {
            "name": fields.pop("name", None) or unique_agent("parent"),
            "actions": {"delegate": delegate, **(then or {})},
            "policy": PolicySpec(approvers=["operator"]),
            **fields,
        }
    )


async def test_an_approval_inside_the_child_is_decided_there_and_the_parent_takes_its_result(
    aios_client: AiosClient, agents_dir: Path, effect_server: EffectServer, temporal_client: Client
) -> None:
    child = on_disk(agents_dir, refund_like_manifest(effect_server.url))  # payout over 100 waits for alice
    parent = delegating_manifest(child.name)
    started = await aios_client.start_run(parent.name, {"customer": "cus_1", "amount": 250}, manifest=parent)
    child_id = child_run_id(started.run_id, 1, child.name)

    waiting = await wait_for_status(aios_client, child_id, RunStatus.WAITING_APPROVAL)
    assert waiting.pending_approval is not None and waiting.pending_approval.action == "payout"
    assert (await aios_client.state(started.run_id)).status is RunStatus.RUNNING  # the parent waits
    outcome = await aios_client.decide(child_id, "approve", approver="alice")
    assert outcome.accepted

    final = await aios_client.result(started.run_id, within=RESULT_WITHIN)
    assert final.status is RunStatus.COMPLETED
    delegated = final.steps[0]
    assert (delegated.action, delegated.status) == ("delegate", "executed")
    summary = delegated.detail["child"]
    assert (summary["child_run_id"], summary["status"]) == (child_id, "completed")
    child_steps = [(s["action"], s["status"]) for s in summary["steps"]]
    assert child_steps == [("charge", "executed"), ("payout", "executed")]
    assert effect_server.effects_for("/effects/payout") == 1
    # Budget roll-up: the child's spend counts in the parent's.
    child_final = await aios_client.result(child_id)
    assert child_final.tokens_spent > 0
    assert final.delegated_tokens == child_final.tokens_spent == summary["tokens"]
    # Lineage: the child's cause is its parent, and `aios show` prints the chain.
    described = await temporal_client.get_workflow_handle(child_id).describe()
    assert described.typed_search_attributes.get(CAUSE_KEY) == f"run:{started.run_id}"
    assert await aios_client.lineage(child_id) == [child_id, started.run_id, "person:operator"]
    # In a thread: the worker answering the subprocess's query runs on this test's event loop.
    shown = await asyncio.to_thread(run_aios, "show", child_id, settings=aios_client.settings)
    assert shown.returncode == 0, shown.stderr
    assert f"lineage: {child_id} <- {started.run_id} <- person:operator" in shown.stdout


async def test_a_child_may_spend_only_what_its_parent_has_left(
    aios_client: AiosClient, agents_dir: Path
) -> None:
    # The child's one turn reserves 1,000 tokens; its parent's run cap is 1,000 and it has
    # spent some of it on its own first turn: the child pauses on its parent's budget.
    child = on_disk(agents_dir, noop_manifest(1, model=ModelSpec(tokens_per_turn_estimate=1_000)))
    parent = delegating_manifest(child.name, budget=BudgetSpec(tokens_per_run=1_000))
    started = await aios_client.start_run(parent.name, {"customer": "cus_2", "amount": 5}, manifest=parent)
    child_id = child_run_id(started.run_id, 1, child.name)

    await wait_for_status(aios_client, child_id, RunStatus.PAUSED_BUDGET)
    paused = [row for row in await audit_story(aios_client.settings, child_id) if row.outcome == "paused"]
    assert "parent run's tokens cap would be exceeded" in paused[0].rationale


async def test_a_finished_child_is_undone_when_its_parent_fails_later(
    aios_client: AiosClient, agents_dir: Path, effect_server: EffectServer
) -> None:
    effect_server.refusals["/effects/ship"] = 422  # the parent's step after the child fails for good
    child = on_disk(agents_dir, refund_like_manifest(effect_server.url))  # amount 50: no approval
    ship = http_action(effect_server.url, "ship", RiskClass.LOW, params=("customer",))
    parent = delegating_manifest(child.name, then={"ship": ship})
    started = await aios_client.start_run(parent.name, {"customer": "cus_3", "amount": 50}, manifest=parent)
    child_id = child_run_id(started.run_id, 1, child.name)

    final = await aios_client.result(started.run_id, within=RESULT_WITHIN)
    assert final.status is RunStatus.COMPENSATED
    steps = [(step.action, step.status) for step in final.steps]
    assert steps == [("delegate", "executed"), ("ship", "failed"), ("refund", "compensated")]
    assert effect_server.effects_for("/effects/charge") == 1
    assert effect_server.effects_for("/effects/refund") == 1  # the child's own undo, run once
    assert (await aios_client.result(child_id)).status is RunStatus.COMPLETED
    undo = final.steps[-1]
    assert undo.effect_key == f"{child_id}/step-1/charge/undo/refund"  # under the child's key
    await replay_run(aios_client, started.run_id)


async def test_cancelling_the_parent_cancels_its_running_child_which_compensates(
    aios_client: AiosClient, agents_dir: Path, effect_server: EffectServer, temporal_client: Client
) -> None:
    child = on_disk(agents_dir, refund_like_manifest(effect_server.url))
    parent = delegating_manifest(child.name)
    started = await aios_client.start_run(parent.name, {"customer": "cus_4", "amount": 250}, manifest=parent)
    child_id = child_run_id(started.run_id, 1, child.name)
    await wait_for_status(aios_client, child_id, RunStatus.WAITING_APPROVAL)

    await aios_client.cancel(started.run_id)
    for run_id in (child_id, started.run_id):
        assert await _wait_closed(run_id, temporal_client) is WorkflowExecutionStatus.CANCELED
    child_state = await aios_client.state(child_id)
    child_steps = [(s.action, s.status) for s in child_state.steps]
    assert child_steps == [("charge", "executed"), ("refund", "compensated")]
    assert effect_server.effects_for("/effects/refund") == 1
    assert effect_server.effects_for("/effects/payout") == 0
    parent_state = await aios_client.state(started.run_id)
    assert [(s.action, s.status) for s in parent_state.steps] == [("delegate", "failed")]


async def test_a_child_nobody_waits_for_is_cancelled_when_its_parent_compensates(
    aios_client: AiosClient, agents_dir: Path, effect_server: EffectServer, temporal_client: Client
) -> None:
    effect_server.refusals["/effects/ship"] = 422
    child = on_disk(agents_dir, refund_like_manifest(effect_server.url))  # 250: waits for alice
    detached = ActionSpec(
        connector="agent", agent=child.name, wait=False, risk=RiskClass.LOW, params=["customer", "amount"]
    )
    ship = http_action(effect_server.url, "ship", RiskClass.LOW, params=("customer",))
    parent = delegating_manifest(child.name, then={"ship": ship})
    parent = parent.model_copy(update={"actions": {"delegate": detached, "ship": ship}})
    started = await aios_client.start_run(parent.name, {"customer": "cus_7", "amount": 250}, manifest=parent)
    child_id = child_run_id(started.run_id, 1, child.name)

    final = await aios_client.result(started.run_id, within=RESULT_WITHIN)
    assert final.status is RunStatus.COMPENSATED
    steps = [(s.action, s.status) for s in final.steps]
    assert steps == [("delegate", "executed"), ("ship", "failed"), ("delegate", "compensated")]
    assert await _wait_closed(child_id, temporal_client) is WorkflowExecutionStatus.CANCELED
    assert effect_server.effects_for("/effects/payout") == 0
    assert effect_server.effects_for("/effects/refund") == effect_server.effects_for("/effects/charge")
    await replay_run(aios_client, started.run_id)


async def test_the_child_agent_s_kill_switch_refuses_the_delegation(
    aios_client: AiosClient, agents_dir: Path
) -> None:
    child = on_disk(agents_dir, noop_manifest(1))
    await aios_client.pause_agent(child.name)
    parent = delegating_manifest(child.name)
    started = await aios_client.start_run(parent.name, {"customer": "cus_8", "amount": 1}, manifest=parent)

    final = await aios_client.result(started.run_id, within=RESULT_WITHIN)
    assert final.status is RunStatus.COMPENSATED
    refusal = f"may not delegate to {child.name!r}: agent {child.name!r} is paused (kill switch)"
    assert refusal in final.outcome


@pytest.fixture
async def limited_client(
    stack_settings: Settings, temporal_client: Client, task_queue: str, agents_dir: Path
) -> AsyncIterator[AiosClient]:
    """A worker that lets runs delegate two levels deep and start one child each."""
    settings = stack_settings.model_copy(
        update={"task_queue": task_queue, "delegation_max_depth": 2, "delegation_max_children": 1}
    )
    stop = asyncio.Event()
    worker = asyncio.create_task(run_worker(settings, stop=stop, task_queue=task_queue))
    yield AiosClient(temporal_client, settings)
    stop.set()
    await worker


async def test_an_agent_delegating_to_itself_is_stopped_by_the_depth_limit(
    limited_client: AiosClient, agents_dir: Path
) -> None:
    name = unique_agent("loop")
    looping = on_disk(agents_dir, delegating_manifest(name, name=name))
    task = {"customer": "cus_5", "amount": 1}
    started = await limited_client.start_run(looping.name, task, manifest=looping)

    final = await limited_client.result(started.run_id, within=RESULT_WITHIN)
    assert final.status is RunStatus.COMPENSATED
    deepest = child_run_id(child_run_id(started.run_id, 1, name), 1, name)  # depth 2 tried depth 3
    story = await audit_story(limited_client.settings, deepest)
    refused = [row for row in story if row.outcome == "delegation refused"]
    assert len(refused) == 1
    assert "at depth 3, over the limit of 2 (AIOS_DELEGATION_MAX_DEPTH)" in refused[0].rationale
    assert "\n" not in refused[0].rationale
    assert (await limited_client.result(deepest)).status is RunStatus.COMPENSATED


async def test_a_run_over_its_fan_out_limit_is_refused(limited_client: AiosClient, agents_dir: Path) -> None:
    child = on_disk(agents_dir, noop_manifest(1))
    second = ActionSpec(connector="agent", agent=child.name, risk=RiskClass.LOW, params=["customer"])
    parent = delegating_manifest(child.name, then={"delegate_again": second})
    started = await limited_client.start_run(parent.name, {"customer": "cus_6", "amount": 1}, manifest=parent)

    final = await limited_client.result(started.run_id, within=RESULT_WITHIN)
    assert final.status is RunStatus.COMPENSATED
    steps = [(s.action, s.status) for s in final.steps]
    assert steps == [("delegate", "executed"), ("delegate_again", "failed")]
    story = await audit_story(limited_client.settings, started.run_id)
    refused = [row.rationale for row in story if row.outcome == "delegation refused"]
    assert len(refused) == 1 and "over the limit of 1 per run (AIOS_DELEGATION_MAX_CHILDREN)" in refused[0]


async def _wait_closed(workflow_id: str, client: Client) -> WorkflowExecutionStatus | None:
    """How the workflow closed, polled until it has (bounded)."""
    handle = client.get_workflow_handle(workflow_id)
    for _ in range(RESULT_WITHIN * 10):
        status = (await handle.describe()).status
        if status is not WorkflowExecutionStatus.RUNNING:
            return status
        await asyncio.sleep(0.1)
    raise AssertionError(f"{workflow_id} did not close within {RESULT_WITHIN}s")
