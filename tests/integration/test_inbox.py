"""`aios inbox` on the real stack, one kind of item at a time: each carries a suggested action
and a command, the command settles it, and a settled item leaves the inbox."""

from __future__ import annotations

import asyncio
import json
import subprocess
import uuid
from collections.abc import AsyncIterator

import psycopg
import pytest
from temporalio.client import Client

from aios.client import AiosClient
from aios.models.inbox import InboxItem, InboxKind
from aios.models.manifest import BudgetSpec
from aios.models.run import RunStatus
from aios.settings import Settings
from tests.support.broken_workflows import BrokenApprovals
from tests.support.cli import run_aios
from tests.support.effect_server import EffectServer
from tests.support.env import child_env
from tests.support.inbox import item_for
from tests.support.manifests import refund_like_manifest
from tests.support.runs import wait_for_status
from workers.main import run_worker
from workflows.agent_run import AgentRunWorkflow
from workflows.registry import WORKFLOWS

pytestmark = pytest.mark.integration

REFUND = {"customer": "c-inbox", "amount": 250}


def aios_cli(settings: Settings, *args: str) -> subprocess.CompletedProcess[str]:
    return run_aios(*args, env=child_env(settings, COLUMNS="250", AIOS_TASK_QUEUE=settings.task_queue))


async def settle_by_cli(settings: Settings, item: InboxItem) -> subprocess.CompletedProcess[str]:
    args = item.command.split()[1:]  # the command as the inbox prints it, minus `aios`
    done = await asyncio.to_thread(aios_cli, settings, *args)
    assert done.returncode == 0, done
    return done


async def test_an_approval_item_has_its_context_and_its_command_settles_it(
    aios_client: AiosClient, effect_server: EffectServer
) -> None:
    manifest = refund_like_manifest(effect_server.url)
    started = await aios_client.start_run(manifest.name, REFUND, manifest=manifest)
    await wait_for_status(aios_client, started.run_id, RunStatus.WAITING_APPROVAL)
    item = await item_for(aios_client, f"approval:{started.run_id}:2")
    assert item is not None and item.kind is InboxKind.APPROVAL and item.agent == manifest.name
    assert item.context["action"] == "payout" and item.context["amount"] == 250
    assert (
        item.context["rule"] == "amount 250 is over 100"
        and item.context["deadlines"]["on_expiry"] == "reject"
    )
    assert item.suggested and item.command == f"aios approve {started.run_id} --step 2 --as alice"

    listed = await asyncio.to_thread(aios_cli, aios_client.settings, "inbox", "--json")
    assert listed.returncode == 0, listed
    keys = [entry["key"] for entry in json.loads(listed.stdout)]
    assert item.key in keys
    shown = await asyncio.to_thread(aios_cli, aios_client.settings, "inbox")
    assert f"settle: aios approve {started.run_id} --step 2 --as alice" in shown.stdout, shown.stdout
    assert "Traceback" not in shown.stderr

    await settle_by_cli(aios_client.settings, item)
    assert (await aios_client.result(started.run_id, within=30)).status is RunStatus.COMPLETED
    await item_for(aios_client, item.key, present=False)


async def test_a_budget_pause_shows_spend_and_its_command_resumes_the_run(
    aios_client: AiosClient, effect_server: EffectServer
) -> None:
    manifest = refund_like_manifest(effect_server.url, budget=BudgetSpec(tokens_per_run=100))
    started = await aios_client.start_run(manifest.name, {"customer": "c-b", "amount": 10}, manifest=manifest)
    await wait_for_status(aios_client, started.run_id, RunStatus.PAUSED_BUDGET)
    item = await item_for(aios_client, f"budget:{started.run_id}")
    assert item is not None and item.kind is InboxKind.BUDGET_PAUSE
    assert "tokens" in item.context["reason"] and "100" in item.context["reason"], item.context
    assert item.command.startswith(f"aios resume {started.run_id} --extra-tokens")
    await settle_by_cli(aios_client.settings, item)
    await item_for(aios_client, item.key, present=False)


@pytest.fixture
async def planted(stack_settings: Settings) -> AsyncIterator[tuple[str, str]]:
    """An unknown effect and an open breaker, written where workers write them."""
    marker = uuid.uuid4().hex[:8]
    effect_key, connector = f"inbox-{marker}/step-1/charge", f"conn-{marker}"
    async with await psycopg.AsyncConnection.connect(
        stack_settings.resolved_database_url, autocommit=True
    ) as conn:
        await conn.execute(
            "INSERT INTO aios_effects (effect_key, run_id, action, connector, request_hash, state, error) "
            "VALUES (%s, %s, 'charge', 'payments', 'h', 'unknown', 'timed out')",
            (effect_key, f"inbox-{marker}"),
        )
        await conn.execute(
            "INSERT INTO aios_connector_health VALUES (%s, %s, 'open', 5, 10, 6, 1, now())",
            (f"worker-{marker}", connector),
        )
        try:
            yield effect_key, connector
        finally:
            await conn.execute("DELETE FROM aios_effects WHERE effect_key = %s", (effect_key,))
            await conn.execute("DELETE FROM aios_connector_health WHERE connector = %s", (connector,))


async def test_an_unknown_effect_and_an_open_breaker_are_listed_and_resolving_the_effect_settles_it(
    aios_client: AiosClient, planted: tuple[str, str]
) -> None:
    effect_key, connector = planted
    effect = await item_for(aios_client, f"unknown_effect:{effect_key}")
    breaker = await item_for(aios_client, f"breaker:{connector}")
    assert (
        effect is not None
        and effect.kind is InboxKind.UNKNOWN_EFFECT
        and effect.context["error"] == "timed out"
    )
    assert (
        breaker is not None
        and breaker.kind is InboxKind.OPEN_BREAKER
        and breaker.context["consecutive_failures"] == 5
    )
    assert breaker.command == "aios status" and "probe" in breaker.suggested
    done = await asyncio.to_thread(
        aios_cli,
        aios_client.settings,
        "effects",
        "resolve",
        effect_key,
        "--applied",
        "--as",
        "operator",
        "--note",
        "seen",
    )
    assert done.returncode == 0, done
    await item_for(aios_client, effect.key, present=False)


async def test_a_stuck_run_is_listed_with_its_failure(
    stack_settings: Settings, temporal_client: Client, effect_server: EffectServer
) -> None:
    queue = f"test-inbox-stuck-{uuid.uuid4().hex[:8]}"
    settings = stack_settings.model_copy(update={"task_queue": queue})
    client = AiosClient(temporal_client, settings)
    workflows = [BrokenApprovals, *(cls for cls in WORKFLOWS if cls is not AgentRunWorkflow)]
    stop = asyncio.Event()
    worker = asyncio.create_task(run_worker(settings, stop=stop, task_queue=queue, workflows=workflows))
    try:
        manifest = refund_like_manifest(effect_server.url)
        started = await client.start_run(manifest.name, REFUND, manifest=manifest)
        await wait_for_status(client, started.run_id, RunStatus.WAITING_APPROVAL)
        await client.signal_decision(started.run_id, "approve", {"approver": "alice"})
        item = await item_for(client, f"stuck:{started.run_id}")
        assert item is not None and item.kind is InboxKind.STUCK_RUN
        assert (
            "deliberately broken" in item.context["failure"]
            and item.command == f"aios cancel {started.run_id}"
        )
    finally:
        await temporal_client.get_workflow_handle(started.run_id).terminate("test finished")
        stop.set()
        await worker
