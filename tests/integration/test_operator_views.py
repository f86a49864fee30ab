"""`aios status`, `aios effects`, `aios approvals` and effect retention, against the real stack."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import uuid

import psycopg

from aios.client import AiosClient
from aios.ledger import effects
from aios.models.run import RunStatus
from aios.settings import Settings
from tests.support.effect_server import EffectServer
from tests.support.env import child_env
from tests.support.manifests import noop_manifest, refund_like_manifest
from tests.support.runs import wait_for_status

AIOS = [sys.executable, "-m", "aios.cli"]


def _aios(*args: str) -> subprocess.CompletedProcess[str]:
    env = child_env(COLUMNS="200")
    return subprocess.run([*AIOS, *args], capture_output=True, text=True, timeout=120, check=False, env=env)


async def test_status_shows_the_breakers_a_running_worker_reports(aios_client: AiosClient) -> None:
    await asyncio.sleep(0.5)  # the worker reports at start, then every few seconds
    result = await asyncio.to_thread(_aios, "status")
    assert result.returncode == 0, result.stderr
    assert "connector breakers" in result.stdout
    breakers = result.stdout.split("connector breakers", 1)[1]
    http_row = next(line for line in breakers.splitlines() if "│ http" in line)
    assert "closed" in http_row


async def test_effects_lists_a_runs_effects(aios_client: AiosClient) -> None:
    manifest = noop_manifest(2)
    started = await aios_client.start_run(manifest.name, {}, manifest=manifest)
    await aios_client.result(started.run_id)
    result = await asyncio.to_thread(_aios, "effects", started.run_id)
    assert result.returncode == 0, result.stderr
    assert f"{started.run_id}/step-1/step_1" in result.stdout
    assert result.stdout.count("succeeded") == 2


async def test_pruning_forgets_only_old_finished_effects(stack_settings: Settings) -> None:
    run_id = f"prune-{uuid.uuid4().hex[:8]}"
    rows = [("succeeded", 200), ("failed", 200), ("unknown", 200), ("pending", 200), ("succeeded", 1)]
    async with await psycopg.AsyncConnection.connect(
        stack_settings.resolved_database_url, autocommit=True
    ) as conn:
        for index, (state, age_days) in enumerate(rows):
            await conn.execute(
                "INSERT INTO aios_effects (effect_key, run_id, action, connector, request_hash, state, "
                "updated_at) VALUES (%s, %s, 'a', 'noop', 'h', %s, now() - make_interval(days => %s))",
                (f"{run_id}/{index}", run_id, state, age_days),
            )
        await effects.prune(conn, older_than_days=90)
        cursor = await conn.execute(
            "SELECT state FROM aios_effects WHERE run_id = %s ORDER BY effect_key", (run_id,)
        )
        left = [row[0] for row in await cursor.fetchall()]
    assert left == ["unknown", "pending", "succeeded"]


async def test_memory_show_prints_a_runs_working_memory(aios_client: AiosClient) -> None:
    manifest = noop_manifest(2)
    started = await aios_client.start_run(manifest.name, {"customer": "c-wm"}, manifest=manifest)
    await aios_client.result(started.run_id)
    shown = await asyncio.to_thread(_aios, "memory", "show", started.run_id)
    assert shown.returncode == 0, shown.stderr
    assert '"customer": "c-wm"' in shown.stdout
    assert f"{started.run_id}: completed" in shown.stdout
    assert "step_2" in shown.stdout
    missing = await asyncio.to_thread(_aios, "memory", "show", "no-such-run")
    assert missing.returncode == 1
    assert "no working memory" in missing.stderr


async def test_approvals_lists_the_runs_waiting_and_not_one_terminated_while_waiting(
    aios_client: AiosClient, effect_server: EffectServer
) -> None:
    manifest = refund_like_manifest(effect_server.url)
    waiting, terminated = [
        await aios_client.start_run(manifest.name, {"customer": f"c-{i}", "amount": 250}, manifest=manifest)
        for i in range(2)
    ]
    for started in (waiting, terminated):
        await wait_for_status(aios_client, started.run_id, RunStatus.WAITING_APPROVAL)
    # Terminated at the gate: its mirror still says it waits; Temporal knows better.
    await aios_client.handle(terminated.run_id).terminate("operator cleanup")

    listed = await asyncio.to_thread(_aios, "approvals")
    assert listed.returncode == 0, listed.stderr
    assert waiting.run_id in listed.stdout and terminated.run_id not in listed.stdout
    [row] = [line for line in listed.stdout.splitlines() if waiting.run_id in line]
    assert "payout" in row
