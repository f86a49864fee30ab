"""Outcome memory on the real stack: a run remembers what happened when it ends, once, with its
provenance; the next run for the same customer recalls it (the model sees it); a run that
compensated remembers the undoing, never the deed; `aios memory show RUN` links them."""

from __future__ import annotations

import asyncio
import uuid

import psycopg
import pytest

from aios.client import AiosClient
from aios.memory import documents
from aios.models.run import RunState, RunStatus
from aios.settings import Settings
from tests.support.cli import run_aios
from tests.support.effect_server import EffectServer, Fault
from tests.support.env import child_env
from tests.support.manifests import refund_like_manifest

pytestmark = pytest.mark.integration


async def remembered_by(settings: Settings, run_id: str) -> list[documents.Document]:
    async with await psycopg.AsyncConnection.connect(settings.resolved_database_url) as conn:
        return await documents.listing(conn, agent=None, subject=None, limit=10, source_run=run_id)


async def run_for(client: AiosClient, effect_server: EffectServer, customer: str) -> RunState:
    manifest = refund_like_manifest(effect_server.url, name="outcome-desk")
    started = await client.start_run(manifest.name, {"customer": customer, "amount": 50}, manifest=manifest)
    return await asyncio.wait_for(client.result(started.run_id), timeout=90)


async def test_the_next_run_for_the_customer_recalls_the_first_run_s_outcome(
    aios_client: AiosClient, effect_server: EffectServer
) -> None:
    customer = f"c-mem-{uuid.uuid4().hex[:8]}"
    first = await run_for(aios_client, effect_server, customer)
    assert first.status is RunStatus.COMPLETED, first.outcome
    [outcome] = await remembered_by(aios_client.settings, first.run_id)
    assert (outcome.kind, outcome.subject, outcome.source_run) == ("outcome", customer, first.run_id)
    assert f"Run {first.run_id} for {customer} completed" in outcome.text
    assert "Steps: charge executed; payout 50 executed." in outcome.text
    assert f"version:{first.manifest_version}" in outcome.tags

    second = await run_for(aios_client, effect_server, customer)
    assert any(outcome.text in line for line in second.recalled), second.recalled
    # Told once: the run history does not repeat the run its agent remembered.
    assert not any(f"run {first.run_id} (" in line for line in second.recalled), second.recalled
    assert len(await remembered_by(aios_client.settings, first.run_id)) == 1

    shown = await asyncio.to_thread(
        run_aios, "memory", "show", first.run_id, env=child_env(aios_client.settings, COLUMNS="250")
    )
    assert shown.returncode == 0, shown.stderr
    assert "remembered at the end" in shown.stdout and outcome.memory_id[:8] in shown.stdout


async def test_a_compensated_run_remembers_the_undoing_not_the_deed(
    aios_client: AiosClient, effect_server: EffectServer
) -> None:
    effect_server.faults.extend(
        [Fault(), Fault(status=400)]
    )  # the charge goes through, the payout is refused
    ended = await run_for(aios_client, effect_server, f"c-undo-{uuid.uuid4().hex[:8]}")
    assert ended.status is RunStatus.COMPENSATED, ended.outcome
    [outcome] = await remembered_by(aios_client.settings, ended.run_id)
    assert "did not finish and its steps were undone (compensated)" in outcome.text
    assert "Steps: charge executed; payout 50 failed; refund ran to undo the steps before." in outcome.text
    assert " completed" not in outcome.text
