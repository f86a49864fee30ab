"""A real Stripe refund (stripe-mock) as a saga's compensation inside the conductor."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import psycopg
import pytest
from temporalio.client import Client

from aios.client import AiosClient
from aios.governance.subjects import SubjectVault
from aios.ledger import effects
from aios.models.manifest import ActionSpec, AgentManifest, PolicySpec, RiskClass
from aios.models.run import RunStatus
from aios.settings import Settings
from tests.support.effect_server import EffectServer, Fault
from tests.support.manifests import unique_agent
from tests.support.stripe_mock import StripeMock
from workers.main import run_worker


@pytest.fixture
async def stripe_client(
    stack_settings: Settings, temporal_client: Client, task_queue: str, stripe_mock: StripeMock
) -> AsyncIterator[AiosClient]:
    """A worker whose payments connector talks to stripe-mock."""
    settings = stack_settings.model_copy(
        update={"task_queue": task_queue, "stripe_base_url": stripe_mock.url}
    )
    stop = asyncio.Event()
    worker = asyncio.create_task(run_worker(settings, stop=stop, task_queue=task_queue))
    yield AiosClient(temporal_client, settings)
    stop.set()
    await worker


def _charge_then_ship(ship_url: str) -> AgentManifest:
    return AgentManifest.model_validate(
        {
            "name": unique_agent("shop"),
            "actions": {
                "charge": ActionSpec(
                    connector="payments",
                    target="payment_intent",
                    risk=RiskClass.LOW,
                    params=["customer", "amount", "currency"],
                    compensation="refund_charge",
                ),
                "ship": ActionSpec(
                    connector="http",
                    target=f"{ship_url}/effects/ship",
                    risk=RiskClass.MEDIUM,
                    params=["customer"],
                ),
                "refund_charge": ActionSpec(
                    connector="payments",
                    target="refund",
                    risk=RiskClass.HIGH,
                    params=["amount"],
                    compensation_only=True,
                ),
            },
            "policy": PolicySpec(approvers=["alice"], min_confidence=0.5),
        }
    )


async def test_a_failed_step_refunds_the_charge_through_stripe(
    stripe_client: AiosClient, effect_server: EffectServer
) -> None:
    effect_server.faults.append(Fault(status=422))  # the shipping service refuses: final
    manifest = _charge_then_ship(effect_server.url)
    task = {"customer": "cus_123", "amount": 2500, "currency": "usd"}
    started = await stripe_client.start_run(manifest.name, task, manifest=manifest)
    final = await asyncio.wait_for(stripe_client.result(started.run_id), timeout=120)

    assert final.status is RunStatus.COMPENSATED
    steps = {(step.action, step.status) for step in final.steps}
    assert steps == {("charge", "executed"), ("ship", "failed"), ("refund_charge", "compensated")}
    effects = {e["action"]: e for e in await _effects(stripe_client, started.run_id)}
    assert effects["charge"]["response"]["object"] == "payment_intent"
    assert effects["refund_charge"]["response"]["object"] == "refund"
    assert effects["refund_charge"]["state"] == "succeeded"


async def _effects(client: AiosClient, run_id: str) -> list[dict[str, Any]]:
    """The run's effects as the ledger reads them, responses opened with the subject's key."""
    vault = SubjectVault.for_settings(client.settings)
    async with await psycopg.AsyncConnection.connect(client.settings.resolved_database_url) as conn:
        cursor = await conn.execute(
            "SELECT effect_key, action FROM aios_effects WHERE run_id = %s", (run_id,)
        )
        found = []
        for key, action in await cursor.fetchall():
            record = await effects.find(conn, key, vault=vault)
            assert record is not None
            found.append({"action": action, "state": record.state, "response": record.response})
        return found
