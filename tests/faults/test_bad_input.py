"""Bad input gets a clear error each time, and the run it was aimed at is unharmed.

Malformed manifests, wrongly typed signals and updates, an oversized payload, unknown run ids,
unauthorized approvers, SQL and markup in user text.
"""

from __future__ import annotations

import time
from pathlib import Path

import psycopg
import pytest
from temporalio.client import WorkflowUpdateFailedError

from aios.client import MAX_INPUT_BYTES, AiosClient
from aios.errors import DecisionRefused, InputTooLarge, ManifestInvalid, RunNotFound
from aios.governance.manifests import load_manifest
from aios.models.manifest import AgentManifest
from aios.models.run import RunStatus
from tests.faults.report import REPORT, Row
from tests.support.effect_server import EffectServer
from tests.support.manifests import refund_like_manifest
from tests.support.runs import audit_story, wait_for_state, wait_for_status

pytestmark = pytest.mark.integration

SQL = "'; DROP TABLE aios_runs; --"
MARKUP = "<script>alert('x')</script>"


async def _assert_stored_as_data(client: AiosClient, run_id: str) -> None:
    async with await psycopg.AsyncConnection.connect(client.settings.resolved_database_url) as conn:
        cursor = await conn.execute("SELECT count(*) FROM aios_runs WHERE run_id = %s", (run_id,))
        assert (await cursor.fetchone()) == (1,)  # the table is still there, with the run in it
    story = await audit_story(client.settings, run_id)
    assert any(row.rationale == MARKUP for row in story)  # the markup note is kept verbatim


async def _oversized_start_is_refused(client: AiosClient, manifest: AgentManifest) -> str:
    """A 3 MB task is refused by the client, naming the field and the fix; nothing starts."""
    big_id = f"{manifest.name}-oversized"
    with pytest.raises(InputTooLarge) as too_big:
        await client.start_run(
            manifest.name, {"customer": "c", "blob": "x" * 3_000_000}, manifest=manifest, run_id=big_id
        )
    said = str(too_big.value)
    assert "the largest field is `task` (3,000,0" in said and "mostly `task.blob`" in said, said
    assert f"over the limit of {MAX_INPUT_BYTES:,} bytes" in said, said
    assert "aios memory remember" in said and "No run was started" in said, said
    with pytest.raises(RunNotFound):
        await client.state(big_id)  # nothing half-started was left behind
    return said


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("name: refund\n", "actions"),
        ("- just\n- a list\n", "mapping"),
        ("name: [unclosed\n", "refund.yaml"),
        (
            "name: x-agent\npolicy: {approvers: [a]}\n"
            "actions:\n  pay: {connector: http, risk: catastrophic}\n",
            "'low', 'medium', 'high' or 'critical'",
        ),
        (
            f'name: "{SQL}"\npolicy: {{approvers: [a]}}\nactions:\n  a: {{connector: noop, risk: low}}\n',
            "name",
        ),
    ],
    ids=["missing-actions", "not-a-mapping", "broken-yaml", "unknown-risk", "sql-in-name"],
)
def test_a_malformed_manifest_is_refused_with_what_is_wrong(tmp_path: Path, text: str, expected: str) -> None:
    path = tmp_path / "refund.yaml"
    path.write_text(text)
    with pytest.raises(ManifestInvalid) as error:
        load_manifest(path)
    assert expected in str(error.value)


async def test_unknown_run_ids_get_a_named_error(aios_client: AiosClient) -> None:
    for call in (
        aios_client.state("no-such-run-123"),
        aios_client.decide("no-such-run-123", "approve", approver="alice"),
        aios_client.cancel("no-such-run-123"),
        aios_client.pause("no-such-run-123"),
        aios_client.signal_decision("no-such-run-123", "approve", {"approver": "alice"}),
    ):
        with pytest.raises(RunNotFound, match="no run 'no-such-run-123' in this namespace"):
            await call


async def test_bad_input_against_a_waiting_run_leaves_it_unharmed(
    aios_client: AiosClient, effect_server: EffectServer
) -> None:
    row = REPORT.add(Row("bad input against a waiting run", 1))
    began = time.monotonic()
    manifest = refund_like_manifest(effect_server.url)
    # SQL and markup in user text travel as data: stored verbatim, never executed or rendered.
    task = {"customer": SQL, "amount": 250, "note": MARKUP}
    started = await aios_client.start_run(manifest.name, task, manifest=manifest)
    await wait_for_status(aios_client, started.run_id, RunStatus.WAITING_APPROVAL)
    too_big = await _oversized_start_is_refused(aios_client, manifest)
    row.notes = f"oversized start refused: {too_big!r} "

    # Unauthorized approvers, through the update and through the signal.
    with pytest.raises(DecisionRefused, match="'mallory' may not approve this; allowed: alice"):
        await aios_client.decide(started.run_id, "approve", approver="mallory")
    with pytest.raises(ValueError, match="verdict must be 'approve' or 'reject', not 'maybe'"):
        await aios_client.decide(started.run_id, "maybe", approver="alice")
    await aios_client.signal_decision(started.run_id, "approve", {"approver": "mallory"})

    # Wrongly typed signals: each is refused and recorded, nothing else happens.
    await aios_client.signal_decision(started.run_id, "approve", {"approver": ["alice"]})
    await aios_client.signal_decision(started.run_id, "approve", {"approver": "alice", "step": "two"})
    await aios_client.temporal.get_workflow_handle(started.run_id).signal("approve", "just a string")
    await aios_client.temporal.get_workflow_handle(started.run_id).signal("resume", {"extra_tokens": "lots"})

    # A wrongly typed update never reaches the run.
    handle = aios_client.temporal.get_workflow_handle(started.run_id)
    with pytest.raises(WorkflowUpdateFailedError) as update_error:
        await handle.execute_update("decide", {"verdict": "approve", "decision": {"approver": 7}})
    update_text = str(update_error.value.cause)
    assert "malformed decide: decision.approver: Input should be a valid string" in update_text

    # Refused: the update and the signal from mallory, three malformed approvals, one resume.
    state = await wait_for_state(aios_client, started.run_id, lambda s: len(s.refused_decisions) >= 6)
    assert state.status is RunStatus.WAITING_APPROVAL  # unharmed: still waiting at the same gate
    reasons = [refused.reason for refused in state.refused_decisions]
    assert len(reasons) == 6, reasons
    assert all(r.startswith("'mallory' may not approve") for r in reasons[:2]), reasons
    assert all(r.startswith("malformed approve") for r in reasons[2:5]), reasons
    assert reasons[5].startswith("malformed resume"), reasons
    assert effect_server.effects_for("/payout") == 0

    # The run goes on as if nothing happened; a markup note is kept verbatim.
    await aios_client.decide(started.run_id, "approve", approver="alice", note=MARKUP)
    final = await aios_client.result(started.run_id)
    assert final.status is RunStatus.COMPLETED
    assert effect_server.effects_for("/charge") == 1
    assert effect_server.effects_for("/payout") == 1
    assert effect_server.duplicates() == 0
    sent = [r for r in effect_server.responses.values() if r["request"].get("customer") == SQL]
    assert sent, "the SQL text reached the connector verbatim, as data"
    await _assert_stored_as_data(aios_client, started.run_id)
    row.completed = 1
    row.seconds = time.monotonic() - began
    row.notes += f"update error: {update_text[:120]!r}. "
    # The run the oversized payload was for never existed; the waiting run completed.
    row.lost = 0
    print(row.notes)
