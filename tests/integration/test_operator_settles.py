"""An unknown outcome never ends quietly: the run waits for the operator, who settles it.

On the real dev server and Postgres, with the loopback effect server: an effect is sent and
its answer lost, its retry refused, and its lookup unavailable (405: the service cannot be
asked), so reconciliation gives up with the ledger `unknown`. The run then waits with status
`needs_operator` naming the effect, until `aios effects resolve` (the real CLI, in a
subprocess) settles the ledger; the run reads the outcome from the ledger and goes on
(applied) or compensates (not applied). The last tests cover a run that ends
`needs_operator` because an undo itself failed, and a resolve whose run is gone.
"""

from __future__ import annotations

import asyncio
import subprocess
import sys
import uuid
from datetime import timedelta

import psycopg
from temporalio.client import WorkflowExecutionStatus

from aios.client import EFFECT_RESOLVED_SIGNAL, AiosClient
from aios.governance.subjects import SubjectVault
from aios.ledger import effects
from aios.models.run import RunState, RunStatus
from aios.settings import Settings
from tests.integration.test_reconcile import (
    HANG,
    charge_then_ship,
    impatient_client,  # noqa: F401  (shared fixture)
    ledger_row,
    wait_for_hung_requests,
)
from tests.support.effect_server import EffectServer, Fault
from tests.support.env import child_env
from tests.support.runs import audit_outcomes, wait_for_state

AIOS = [sys.executable, "-m", "aios.cli"]
RECONCILE_WITHIN = timedelta(seconds=2)  # the reconciler gives up after this (default: an hour)
NO_LOOKUP = 405  # the service offers no lookup: only a webhook or the operator can tell


def aios_cli(*args: str) -> subprocess.CompletedProcess[str]:
    env = child_env(COLUMNS="200")
    return subprocess.run([*AIOS, *args], capture_output=True, text=True, timeout=120, check=False, env=env)


async def waiting_for_operator(client: AiosClient, run_id: str) -> RunState:
    return await wait_for_state(client, run_id, lambda state: state.awaiting_operator is not None, within=90)


async def resolution_of(settings: Settings, key: str) -> tuple[str, str | None, str | None]:
    """The settlement as the ledger reads it, the operator's note opened with the subject's key."""
    vault = SubjectVault.for_settings(settings)
    async with await psycopg.AsyncConnection.connect(settings.resolved_database_url) as conn:
        row = await effects.operator_view(conn, key, vault=vault)
    assert row is not None, f"no ledger row for {key}"
    return row.state, row.resolved_by, row.resolution_note


async def test_an_unknown_outcome_waits_for_the_operator_who_says_it_was_applied(
    impatient_client: AiosClient,  # noqa: F811  (the fixture imported above)
    effect_server: EffectServer,
    database_url: str,
) -> None:
    # charge: applied but unanswered, then refused (the ledger stays unknown); no lookup.
    effect_server.lookup_status = NO_LOOKUP
    effect_server.faults.extend([Fault(apply_then_hang=True, hang_seconds=HANG), Fault(status=400)])
    manifest = charge_then_ship(effect_server.url)
    started = await impatient_client.start_run(
        manifest.name, {"customer": "c-1"}, manifest=manifest, reconcile_within=RECONCILE_WITHIN
    )
    charge_key = f"{started.run_id}/step-1/charge"

    waiting = await waiting_for_operator(impatient_client, started.run_id)
    assert waiting.status is RunStatus.NEEDS_OPERATOR
    assert not waiting.ended
    assert waiting.awaiting_operator is not None
    assert (waiting.awaiting_operator.effect_key, waiting.awaiting_operator.action) == (charge_key, "charge")
    handle = impatient_client.temporal.get_workflow_handle(started.run_id)
    assert (await handle.describe()).status is WorkflowExecutionStatus.RUNNING
    assert (await ledger_row(database_url, charge_key)).state == "unknown"
    assert effect_server.effects_for("/effects/ship") == 0  # it neither goes on nor compensates
    assert effect_server.effects_for("/effects/refund") == 0

    # Malformed and foreign nudges are refused and recorded; the run goes on waiting.
    await handle.signal(EFFECT_RESOLVED_SIGNAL, {"effect_key": 5})
    await handle.signal(
        EFFECT_RESOLVED_SIGNAL, {"effect_key": "other-run/step-1/x", "outcome": "applied", "by": "mallory"}
    )
    refused = await wait_for_state(impatient_client, started.run_id, lambda s: len(s.refused_decisions) == 2)
    assert "malformed effect_resolved" in refused.refused_decisions[0].reason
    assert "not one of this run's" in refused.refused_decisions[1].reason
    assert refused.awaiting_operator is not None

    resolved = await asyncio.to_thread(
        aios_cli, "effects", "resolve", charge_key, "--applied", "--as", "alice", "--note", "seen at the bank"
    )
    assert resolved.returncode == 0, resolved.stderr
    assert f"{charge_key}: succeeded (resolved by alice)" in resolved.stdout

    final = await asyncio.wait_for(impatient_client.result(started.run_id), timeout=60)
    assert final.status is RunStatus.COMPLETED, final.outcome
    assert final.ended and final.awaiting_operator is None
    steps = {step.action: step for step in final.steps}
    assert steps["charge"].status == "executed"
    assert (steps["charge"].detail["reconciled"], steps["charge"].detail["resolved_by"]) == (
        "succeeded",
        "operator",
    )
    assert "alice" in steps["charge"].detail["operator"]
    assert steps["ship"].status == "executed"
    assert await resolution_of(impatient_client.settings, charge_key) == (
        "succeeded",
        "alice",
        "seen at the bank",
    )
    await asyncio.to_thread(wait_for_hung_requests)
    assert effect_server.applied[charge_key] == 1  # once: nobody tried it again
    assert effect_server.duplicates() == 0
    audit = await audit_outcomes(impatient_client.settings, started.run_id)
    assert ("reconciler", "charge", "needs_operator") in audit
    assert ("alice", "resolve_effect", "applied") in audit  # the CLI's own row
    assert ("alice", "resolve_effect", "told:applied") in audit  # the run's
    assert audit[-1] == ("policy", "finish", "completed")

    again = await asyncio.to_thread(
        aios_cli, "effects", "resolve", charge_key, "--not-applied", "--as", "bob", "--note", "no"
    )
    assert again.returncode == 1
    assert "is succeeded (settled by alice), not unknown" in again.stderr
    assert "Traceback" not in again.stderr


async def test_not_applied_makes_the_waiting_run_compensate(
    impatient_client: AiosClient,  # noqa: F811  (the fixture imported above)
    effect_server: EffectServer,
    database_url: str,
) -> None:
    # charge goes through; ship: the connection drops (unknown), then a refusal; no lookup.
    effect_server.lookup_status = NO_LOOKUP
    effect_server.faults.extend([Fault(), Fault(reset=True), Fault(status=400)])
    manifest = charge_then_ship(effect_server.url)
    started = await impatient_client.start_run(
        manifest.name, {"customer": "c-2"}, manifest=manifest, reconcile_within=RECONCILE_WITHIN
    )
    ship_key = f"{started.run_id}/step-2/ship"
    waiting = await waiting_for_operator(impatient_client, started.run_id)
    assert waiting.awaiting_operator is not None
    assert waiting.awaiting_operator.effect_key == ship_key
    assert effect_server.effects_for("/effects/refund") == 0

    resolved = await asyncio.to_thread(
        aios_cli,
        "effects",
        "resolve",
        ship_key,
        "--not-applied",
        "--as",
        "alice",
        "--note",
        "not at the depot",
    )
    assert resolved.returncode == 0, resolved.stderr

    final = await asyncio.wait_for(impatient_client.result(started.run_id), timeout=60)
    assert final.status is RunStatus.COMPENSATED, final.outcome
    statuses = {(step.action, step.status) for step in final.steps}
    assert statuses == {("charge", "executed"), ("ship", "failed"), ("refund", "compensated")}
    assert await resolution_of(impatient_client.settings, ship_key) == ("failed", "alice", "not at the depot")
    assert effect_server.effects_for("/effects/charge") == 1
    assert effect_server.effects_for("/effects/refund") == 1
    assert effect_server.effects_for("/effects/ship") == 0


async def test_a_run_whose_undo_fails_ends_needs_operator(
    aios_client: AiosClient, effect_server: EffectServer, database_url: str
) -> None:
    effect_server.refusals.update({"/effects/ship": 422, "/effects/refund": 422})
    manifest = charge_then_ship(effect_server.url)
    started = await aios_client.start_run(manifest.name, {"customer": "c-3"}, manifest=manifest)
    final = await asyncio.wait_for(aios_client.result(started.run_id), timeout=90)

    assert final.status is RunStatus.NEEDS_OPERATOR, final.outcome
    assert final.ended and final.awaiting_operator is None  # ended, not waiting
    assert "compensation failed for steps [1]" in final.outcome
    statuses = {(step.action, step.status) for step in final.steps}
    assert statuses == {("charge", "executed"), ("ship", "failed"), ("refund", "compensation_failed")}
    handle = aios_client.temporal.get_workflow_handle(started.run_id)
    assert (await handle.describe()).status is WorkflowExecutionStatus.COMPLETED
    assert effect_server.effects_for("/effects/charge") == 1  # the charge stands: a person must act
    refund = await ledger_row(database_url, f"{started.run_id}/step-1/charge/undo/refund")
    assert refund.state == "failed"
    audit = await audit_outcomes(aios_client.settings, started.run_id)
    assert audit[-1] == ("policy", "finish", "needs_operator")


async def test_a_resolve_whose_run_is_gone_still_settles_the_ledger_and_audit(
    database_url: str, stack_settings: Settings
) -> None:
    run_id = f"gone-{uuid.uuid4().hex[:8]}"
    key = f"{run_id}/step-1/charge"
    async with await psycopg.AsyncConnection.connect(database_url, autocommit=True) as conn:
        await effects.begin(conn, key=key, run_id=run_id, action="charge", connector="http", request={})
        await effects.finish(conn, key=key, state="unknown", error="timed out")

    resolved = await asyncio.to_thread(
        aios_cli,
        "effects",
        "resolve",
        key,
        "--applied",
        "--as",
        "alice",
        "--note",
        "in the dashboard",
        "--response",
        '{"id": "pi_1"}',
    )
    assert resolved.returncode == 0, resolved.stderr
    assert f"run {run_id}: no run" in resolved.stdout
    assert await resolution_of(stack_settings, key) == ("succeeded", "alice", "in the dashboard")
    assert (await ledger_row(database_url, key)).response == {"id": "pi_1"}
    assert await audit_outcomes(stack_settings, run_id) == [("alice", "resolve_effect", "applied")]


async def test_resolve_refuses_bad_input_in_one_line(database_url: str) -> None:
    missing = await asyncio.to_thread(
        aios_cli, "effects", "resolve", "no-such/step-1/x", "--applied", "--as", "a", "--note", "n"
    )
    assert (missing.returncode, missing.stderr.count("\n")) == (1, 1), missing.stderr
    assert "no effect 'no-such/step-1/x' in the ledger" in missing.stderr
    undecided = await asyncio.to_thread(aios_cli, "effects", "resolve", "k", "--as", "a", "--note", "n")
    assert undecided.returncode == 2
    assert "--applied or --not-applied" in undecided.stderr
    listed = await asyncio.to_thread(aios_cli, "effects", "--limit", "1")  # still lists, as before
    assert listed.returncode == 0, listed.stderr
