"""The audit trail of a real run: `aios audit RUN` tells its story, `aios audit verify` guards it.

These tests run the worker against a scratch database: they tamper with audit rows on
purpose, and the shared development database's chain must stay intact for everyone else.
"""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
from collections.abc import AsyncIterator
from typing import Any

import psycopg
import pytest
from pydantic import SecretStr
from temporalio.client import Client

from aios.client import AiosClient
from aios.governance import audit
from aios.models.run import RunState, RunStatus
from aios.settings import Settings
from aios.store.migrate import migrate
from tests.support.effect_server import EffectServer
from tests.support.env import child_env
from tests.support.manifests import refund_like_manifest
from tests.support.runs import wait_for_status
from workers.main import run_worker

AIOS = [sys.executable, "-m", "aios.cli"]
LARGE = {"customer": "c-2", "amount": 250}  # over the approval threshold: payout needs alice
DISABLE = "ALTER TABLE aios_audit DISABLE TRIGGER aios_audit_append_only"
ENABLE = "ALTER TABLE aios_audit ENABLE TRIGGER aios_audit_append_only"


@pytest.fixture
async def scratch_client(
    stack_settings: Settings, temporal_client: Client, task_queue: str, scratch_database: str
) -> AsyncIterator[AiosClient]:
    """Like `aios_client`, but the worker (and the CLI) use a migrated scratch database."""
    await migrate(scratch_database)
    settings = stack_settings.model_copy(
        update={"task_queue": task_queue, "database_url": SecretStr(scratch_database)}
    )
    stop = asyncio.Event()
    worker = asyncio.create_task(run_worker(settings, stop=stop, task_queue=task_queue))
    yield AiosClient(temporal_client, settings)
    async for execution in temporal_client.list_workflows(
        f"TaskQueue = '{task_queue}' AND ExecutionStatus = 'Running'"
    ):
        await temporal_client.get_workflow_handle(execution.id).terminate("test finished")
    stop.set()
    await worker


def _aios(database_url: str, *args: str) -> subprocess.CompletedProcess[str]:
    env = child_env(COLUMNS="200", AIOS_DATABASE_URL=database_url)
    return subprocess.run([*AIOS, *args], capture_output=True, text=True, timeout=120, check=False, env=env)


async def _approved_refund(client: AiosClient, effect_server: EffectServer) -> RunState:
    """The demo's story: charge (auto), payout over the threshold, approved by alice."""
    manifest = refund_like_manifest(effect_server.url)
    started = await client.start_run(manifest.name, LARGE, manifest=manifest)
    await wait_for_status(client, started.run_id, RunStatus.WAITING_APPROVAL)
    await client.decide(started.run_id, "approve", approver="alice", note="checked the invoice")
    final = await client.result(started.run_id)
    assert final.status is RunStatus.COMPLETED
    return final


async def _story(database_url: str, run_id: str) -> list[audit.AuditRow]:
    async with await psycopg.AsyncConnection.connect(database_url) as conn:
        return await audit.run_story(conn, run_id)


async def _tamper(database_url: str, statement: str, params: tuple[Any, ...]) -> None:
    """What someone with the owner's rights could do: switch the guard off, edit, switch it on."""
    async with await psycopg.AsyncConnection.connect(database_url) as conn, conn.transaction():
        await conn.execute(DISABLE)
        await conn.execute(statement, params)
        await conn.execute(ENABLE)


async def test_audit_tells_the_whole_story_of_a_run(
    scratch_client: AiosClient, scratch_database: str, effect_server: EffectServer
) -> None:
    run_id = (await _approved_refund(scratch_client, effect_server)).run_id
    rows = await _story(scratch_database, run_id)
    events = [(row.step, row.actor, row.action, row.outcome) for row in rows]
    assert events[0] == ("run", "operator", "start", "started")
    assert ("step-1", "policy", "charge", "executed") in events
    assert ("step-2", "policy", "payout", "approval requested") in events
    assert ("step-2", "alice", "payout", "approve") in events
    assert ("step-2", "alice", "payout", "executed") in events
    assert events[-1] == ("run", "policy", "finish", "completed")

    result = await asyncio.to_thread(_aios, scratch_database, "audit", run_id)
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    for row in rows:  # every event is a line of the table, with its actor and outcome
        assert any(row.actor in line and row.outcome in line and row.action in line for line in lines), row
    assert "checked the invoice" in result.stdout
    assert f"{len(rows)} events" in result.stdout


async def test_audit_json_carries_every_field(
    scratch_client: AiosClient, scratch_database: str, effect_server: EffectServer
) -> None:
    final = await _approved_refund(scratch_client, effect_server)
    run_id = final.run_id
    result = await asyncio.to_thread(_aios, scratch_database, "audit", run_id, "--json")
    assert result.returncode == 0, result.stderr
    rows = json.loads(result.stdout)
    assert [row["event_key"] for row in rows] == [f"{run_id}/e{n}" for n in range(1, len(rows) + 1)]
    proposal = next(row for row in rows if row["outcome"] == "proposed:needs_approval")
    assert proposal["confidence"] == pytest.approx(proposal["detail"]["confidence"])
    assert proposal["rationale"]
    verdict = next(row for row in rows if row["outcome"] == "approve")
    assert (verdict["actor"], verdict["approver"], verdict["rationale"]) == (
        "alice",
        "alice",
        "checked the invoice",
    )
    assert {row["manifest_version"] for row in rows} == {final.manifest_version}
    assert all(row["trace_id"] and len(row["trace_id"]) == 32 for row in rows)
    # A sealed detail (the run serves a customer) is shown opened; the digest covers it as stored.
    assert all(row["input_digest"] == audit.digest(row["sealed_detail"] or row["detail"]) for row in rows)
    assert [row["chain_seq"] for row in rows] == sorted(row["chain_seq"] for row in rows)


async def test_an_unknown_run_is_a_clear_error(scratch_database: str) -> None:
    await migrate(scratch_database)
    result = await asyncio.to_thread(_aios, scratch_database, "audit", "no-such-run")
    assert result.returncode == 1
    assert "no audit rows for run 'no-such-run'" in result.stderr


async def test_verify_passes_then_names_an_edited_row(
    scratch_client: AiosClient, scratch_database: str, effect_server: EffectServer
) -> None:
    run_id = (await _approved_refund(scratch_client, effect_server)).run_id
    intact = await asyncio.to_thread(_aios, scratch_database, "audit", "verify")
    assert intact.returncode == 0, intact.stderr
    assert "audit chain intact" in intact.stdout

    rows = await _story(scratch_database, run_id)
    verdict = next(row for row in rows if row.outcome == "approve")
    await _tamper(scratch_database, "UPDATE aios_audit SET actor = 'mallory' WHERE id = %s", (verdict.id,))

    broken = await asyncio.to_thread(_aios, scratch_database, "audit", "verify")
    assert broken.returncode == 1
    message = " ".join(broken.stderr.split())
    assert f"row #{verdict.chain_seq} (id {verdict.id}, event {verdict.event_key}, run {run_id})" in message
    assert "a field was edited" in message


async def test_verify_names_the_row_after_a_deleted_one(
    scratch_client: AiosClient, scratch_database: str, effect_server: EffectServer
) -> None:
    run_id = (await _approved_refund(scratch_client, effect_server)).run_id
    by_seq = {row.chain_seq: row for row in await _story(scratch_database, run_id)}
    victim, following = by_seq[4], by_seq[5]
    async with await psycopg.AsyncConnection.connect(scratch_database) as conn:
        async with conn.transaction(force_rollback=True):  # the deletion is seen only in here
            await conn.execute(DISABLE)
            await conn.execute("DELETE FROM aios_audit WHERE id = %s", (victim.id,))
            report = await audit.verify(conn)
        assert report.broken is not None
        assert report.broken.id == following.id
        assert "deleted" in report.broken.reason
        assert (await audit.verify(conn)).ok  # rolled back: the chain is whole again


@pytest.mark.parametrize(
    "statement",
    [
        "UPDATE aios_audit SET outcome = 'rejected'",
        "DELETE FROM aios_audit",
        "TRUNCATE aios_audit",
    ],
)
async def test_changing_the_trail_is_refused(
    scratch_client: AiosClient, scratch_database: str, effect_server: EffectServer, statement: str
) -> None:
    await _approved_refund(scratch_client, effect_server)
    async with await psycopg.AsyncConnection.connect(scratch_database) as conn:
        with pytest.raises(psycopg.errors.InsufficientPrivilege, match="append-only"):
            await conn.execute(statement)


async def test_a_row_written_around_the_chain_is_refused(scratch_database: str) -> None:
    await migrate(scratch_database)
    async with await psycopg.AsyncConnection.connect(scratch_database) as conn:
        with pytest.raises(psycopg.errors.IntegrityConstraintViolation, match="does not extend the chain"):
            await conn.execute(
                "INSERT INTO aios_audit (event_key, run_id, step, actor, action, outcome) "
                "VALUES ('x/e1', 'x', 'run', 'operator', 'start', 'started')"
            )


async def test_many_writers_at_once_keep_one_chain_and_write_each_row_once(scratch_database: str) -> None:
    await migrate(scratch_database)

    async def writer(n: int) -> None:
        async with await psycopg.AsyncConnection.connect(scratch_database, autocommit=True) as conn:
            for i in range(10):
                entry = audit.AuditEntry(
                    f"w{n}/e{i}", f"w{n}", "run", "agent", "act", "done", detail={"i": i}
                )
                await audit.append(conn, [entry])
                await audit.append(conn, [entry])  # a retried activity

    await asyncio.gather(*(writer(n) for n in range(8)))
    async with await psycopg.AsyncConnection.connect(scratch_database) as conn:
        report = await audit.verify(conn)
    assert report.ok, report.broken
    assert report.rows_checked == 80


async def test_a_batch_with_rows_already_written_chains_only_the_new_ones(scratch_database: str) -> None:
    await migrate(scratch_database)

    def entry(i: int) -> audit.AuditEntry:
        return audit.AuditEntry(f"b/e{i}", "b", "run", "agent", "act", "done", detail={"i": i})

    async with await psycopg.AsyncConnection.connect(scratch_database, autocommit=True) as conn:
        first = await audit.append(conn, [entry(2)])
        # A retried record after a partial write: e2 is there, e1 and e3 are new, in one batch.
        batch = await audit.append(conn, [entry(1), entry(2), entry(3)])
        report = await audit.verify(conn)
    assert [appended.newly_recorded for appended in batch] == [True, False, True]
    assert batch[1].audit_id == first[0].audit_id
    assert report.ok, report.broken
    assert report.rows_checked == 3
