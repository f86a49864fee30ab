"""Slots and caps on the real stack: an ended run's slot is freed, a daily cap's pause ends.

A terminated run (`temporal workflow terminate`, the real CLI) never writes its last record,
so it never releases its concurrency slot: the next queued run of its agent frees it (it
asks Temporal whether the holder has ended), and so does each worker's periodic sweep.

A run paused on its agent's daily cap resumes past it when the operator says so
(`aios resume RUN --override-day`, recorded), or by itself when the budget day turns: a
durable timer to the next 00:00 UTC. Waiting a day is not a test: the timer's deadline is
asserted instead, from the run's state and from the TimerStarted event in its history,
against the budget day the ledger uses (`aios.models.run.next_budget_day`).
"""

from __future__ import annotations

import asyncio
import subprocess
import sys
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import psycopg
import pytest
from temporalio.api.enums.v1 import EventType
from temporalio.client import Client

from aios.client import AiosClient
from aios.ledger import budget
from aios.models.manifest import AgentManifest, BudgetSpec, ModelSpec
from aios.models.run import RunStatus, next_budget_day
from aios.settings import Settings
from aios.stack.temporal import find_binary
from tests.integration.test_reconcile import worker_on
from tests.support.effect_server import EffectServer
from tests.support.env import child_env
from tests.support.manifests import noop_manifest, refund_like_manifest
from tests.support.runs import audit_story, wait_for_status

AIOS = [sys.executable, "-m", "aios.cli"]
LARGE = {"customer": "c-2", "amount": 250}  # waits for approval: holds its slot
SMALL = {"customer": "c-1", "amount": 40}


def terminate_with_the_temporal_cli(settings: Settings, run_id: str) -> None:
    binary = find_binary(settings)
    assert binary is not None, "the Temporal CLI is needed (make setup puts it in .aios/bin)"
    result = subprocess.run(
        [
            str(binary),
            "workflow",
            "terminate",
            "--workflow-id",
            run_id,
            "--reason",
            "test: terminated by hand",
            "--address",
            settings.temporal_address,
            "--namespace",
            settings.temporal_namespace,
        ],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr


async def slot_holders(database_url: str, agent: str) -> set[str]:
    async with await psycopg.AsyncConnection.connect(database_url) as conn:
        cursor = await conn.execute("SELECT run_id FROM aios_run_slots WHERE agent = %s", (agent,))
        return {row[0] for row in await cursor.fetchall()}


async def test_a_terminated_runs_slot_goes_to_the_next_queued_run(
    aios_client: AiosClient, effect_server: EffectServer, database_url: str
) -> None:
    manifest = refund_like_manifest(effect_server.url, budget=BudgetSpec(max_concurrent_runs=1))
    first = await aios_client.start_run(manifest.name, LARGE, manifest=manifest)
    await wait_for_status(aios_client, first.run_id, RunStatus.WAITING_APPROVAL)
    second = await aios_client.start_run(manifest.name, SMALL, manifest=manifest)
    await asyncio.sleep(1.5)
    assert (await aios_client.state(second.run_id)).status is RunStatus.QUEUED
    assert await slot_holders(database_url, manifest.name) == {first.run_id}

    await asyncio.to_thread(terminate_with_the_temporal_cli, aios_client.settings, first.run_id)

    final = await asyncio.wait_for(aios_client.result(second.run_id), timeout=60)
    assert final.status is RunStatus.COMPLETED
    assert await slot_holders(database_url, manifest.name) == set()  # both freed
    assert effect_server.effects_for("/payout") == 1  # the second run's; the first never paid


@pytest.fixture
async def sweeping_client(
    stack_settings: Settings, temporal_client: Client, task_queue: str
) -> AsyncIterator[AiosClient]:
    """A worker that sweeps slots every half second (the default is a minute)."""
    settings = stack_settings.model_copy(update={"slot_sweep_seconds": 0.5})
    async with worker_on(settings, temporal_client, task_queue) as client:
        yield client


async def test_the_workers_sweep_frees_a_terminated_runs_slot(
    sweeping_client: AiosClient, effect_server: EffectServer, database_url: str
) -> None:
    manifest = refund_like_manifest(effect_server.url)
    started = await sweeping_client.start_run(manifest.name, LARGE, manifest=manifest)
    await wait_for_status(sweeping_client, started.run_id, RunStatus.WAITING_APPROVAL)
    await asyncio.sleep(1.5)  # a few sweeps: a waiting run keeps its slot
    assert await slot_holders(database_url, manifest.name) == {started.run_id}

    await asyncio.to_thread(terminate_with_the_temporal_cli, sweeping_client.settings, started.run_id)

    deadline = asyncio.get_running_loop().time() + 20
    while await slot_holders(database_url, manifest.name):
        assert asyncio.get_running_loop().time() < deadline, "the sweep never freed the slot"
        await asyncio.sleep(0.2)


def over_the_daily_cap() -> AgentManifest:
    # Each turn reserves 40 tokens; the day's 60 are gone during turn 2.
    return noop_manifest(
        3, budget=BudgetSpec(tokens_per_day=60), model=ModelSpec(tokens_per_turn_estimate=40)
    )


async def test_a_daily_cap_pause_ends_when_the_budget_day_turns(aios_client: AiosClient) -> None:
    manifest = over_the_daily_cap()
    before = datetime.now(UTC)
    started = await aios_client.start_run(manifest.name, {}, manifest=manifest)
    paused = await wait_for_status(aios_client, started.run_id, RunStatus.PAUSED_BUDGET)
    after = datetime.now(UTC)

    assert paused.paused_until is not None
    # The next 00:00 UTC as the ledger counts days (either side of midnight, should the test
    # straddle one), and not the day after: the pause lasts less than a day.
    assert paused.paused_until in {next_budget_day(before), next_budget_day(after)}
    assert budget.today() + timedelta(days=1) >= paused.paused_until.date()

    # The durable timer behind it: started when the run paused, firing at paused_until.
    history = await aios_client.handle(started.run_id).fetch_history()
    timers = [event for event in history.events if event.event_type == EventType.EVENT_TYPE_TIMER_STARTED]
    assert len(timers) == 1
    timer = timers[0]
    fires_at = (
        timer.event_time.ToDatetime(tzinfo=UTC)
        + timer.timer_started_event_attributes.start_to_fire_timeout.ToTimedelta()
    )
    assert abs(fires_at - paused.paused_until) < timedelta(seconds=5)


async def test_a_per_run_cap_pause_waits_for_the_operator_only(aios_client: AiosClient) -> None:
    manifest = noop_manifest(
        3, budget=BudgetSpec(tokens_per_run=100), model=ModelSpec(tokens_per_turn_estimate=40)
    )
    started = await aios_client.start_run(manifest.name, {}, manifest=manifest)
    paused = await wait_for_status(aios_client, started.run_id, RunStatus.PAUSED_BUDGET)
    assert paused.paused_until is None  # another day would not give this run more budget


async def test_resume_override_day_lets_the_run_past_the_daily_cap(
    aios_client: AiosClient, database_url: str
) -> None:
    manifest = over_the_daily_cap()
    started = await aios_client.start_run(manifest.name, {}, manifest=manifest)
    await wait_for_status(aios_client, started.run_id, RunStatus.PAUSED_BUDGET)

    env = child_env(COLUMNS="200")
    resumed = await asyncio.to_thread(
        subprocess.run,
        [*AIOS, "resume", started.run_id, "--override-day", "--as", "alice"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        env=env,
    )
    assert resumed.returncode == 0, resumed.stderr
    assert "past its agent's daily caps" in resumed.stdout

    final = await asyncio.wait_for(aios_client.result(started.run_id), timeout=60)
    assert final.status is RunStatus.COMPLETED
    assert len(final.steps) == 3
    assert final.day_cap_override is not None and final.day_cap_override.by == "alice"
    assert final.paused_until is None
    async with await psycopg.AsyncConnection.connect(database_url) as conn:
        spent, _ = await budget.day_spend(conn, manifest.name)
    story = await audit_story(aios_client.settings, started.run_id)
    recorded = [
        row.detail.get("override_day") for row in story if (row.actor, row.action) == ("alice", "resume")
    ]
    assert spent > manifest.budget.tokens_per_day  # past the cap, and counted there
    assert recorded == [True]
