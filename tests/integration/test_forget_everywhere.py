"""`aios memory forget --subject X` leaves nothing of X readable, on the real stack.

Two subjects each get a canary: in the task of an agent run (so in its audit rows, its effect
responses and the run mirror), in a webhook event for its charge, in remembered memories and
in a compaction summary of them. After `aios memory forget --subject X` through the CLI, X's
canary is in no Postgres table (every table copied out as text), not in the Temporal SQLite
file, not in the span file and not in the logs; `aios audit verify` passes; X's audit rows,
effect and webhook event read "[forgotten]"; the other subject reads as before.
"""

from __future__ import annotations

import logging
import subprocess
import sys
import uuid
from pathlib import Path

import psycopg
import pytest
from psycopg import sql
from temporalio.client import Client

from aios.client import AiosClient
from aios.governance import audit
from aios.governance.subjects import FORGOTTEN, SubjectVault
from aios.ledger import effects
from aios.ledger.webhooks import WebhookIngestor, parse_event
from aios.memory.compaction import CompactionRequest
from aios.models.run import RunStatus
from aios.settings import Settings
from aios.stack import log_files
from tests.integration.test_no_plaintext import temporal_files
from tests.support.effect_server import EffectServer
from tests.support.env import child_env
from tests.support.manifests import refund_like_manifest
from workflows.compaction import CompactionWorkflow


def aios_cli(settings: Settings, *args: str) -> subprocess.CompletedProcess[str]:
    """The real CLI in a child process, against this test's stack."""
    env = child_env(settings, AIOS_DATABASE_URL=settings.resolved_database_url)
    return subprocess.run(
        [sys.executable, "-m", "aios.cli", *args],
        check=False,  # the caller asserts on the exit code, with the output in the message
        env=env,
        capture_output=True,
        text=True,
        timeout=180,
    )


async def postgres_text(database_url: str) -> str:
    """Every row of every table of the database, as COPY writes it out: what a dump would hold."""
    async with await psycopg.AsyncConnection.connect(database_url) as conn:
        cursor = await conn.execute(
            "SELECT table_schema, table_name FROM information_schema.tables "
            "WHERE table_type = 'BASE TABLE' AND table_schema NOT IN ('pg_catalog', 'information_schema')"
        )
        chunks: list[str] = []
        for schema, table in await cursor.fetchall():
            copy = sql.SQL("COPY (SELECT * FROM {}.{}) TO STDOUT").format(
                sql.Identifier(schema), sql.Identifier(table)
            )
            async with conn.cursor().copy(copy) as out:
                chunks.extend([bytes(data).decode(errors="replace") async for data in out])
        return "".join(chunks)


def file_text(*paths: Path) -> str:
    return "".join(path.read_text(errors="replace") for path in paths if path.is_file())


async def run_for(client: AiosClient, server: EffectServer, customer: str, canary: str) -> str:
    manifest = refund_like_manifest(server.url, name=f"forget-{uuid.uuid4().hex[:8]}")
    task = {"customer": customer, "amount": 40, "note": f"ship to {canary}"}
    started = await client.start_run(manifest.name, task, manifest=manifest)
    final = await client.result(started.run_id)
    assert final.status is RunStatus.COMPLETED
    return started.run_id


async def charge_key(database_url: str, run_id: str) -> str:
    async with await psycopg.AsyncConnection.connect(database_url) as conn:
        cursor = await conn.execute(
            "SELECT effect_key FROM aios_effects WHERE run_id = %s AND action = 'charge'", (run_id,)
        )
        row = await cursor.fetchone()
    assert row is not None, "the run charged through the ledger"
    return str(row[0])


async def sealed_rows(database_url: str, run_id: str) -> int:
    async with await psycopg.AsyncConnection.connect(database_url) as conn:
        cursor = await conn.execute(
            "SELECT count(*) FROM aios_audit WHERE run_id = %s AND detail ? 'aios_sealed'", (run_id,)
        )
        row = await cursor.fetchone()
    return int(row[0]) if row else 0


async def webhook_for(settings: Settings, effect_key: str, canary: str) -> None:
    body = {
        "id": f"evt-{uuid.uuid4().hex}",
        "effect_key": effect_key,
        "outcome": "succeeded",
        "response": {"receipt": f"paid {canary}"},
    }
    async with WebhookIngestor(settings) as ingestor:
        await ingestor.ingest(parse_event("test", body))


async def compact(client: Client, settings: Settings, task_queue: str, subject: str, canary: str) -> None:
    agent = f"forget-memory-{uuid.uuid4().hex[:8]}"
    for text in (f"{canary} prefers email", f"{canary} lives in Rotterdam"):
        remembered = aios_cli(settings, "memory", "remember", "--agent", agent, "--subject", subject, text)
        assert remembered.returncode == 0, remembered.stderr
    await client.execute_workflow(
        CompactionWorkflow.run,
        CompactionRequest(agent=agent, subject=subject, older_than_days=0, threshold=-1),
        id=f"compaction-{uuid.uuid4().hex[:10]}",  # an id naming no subject: ids are not encrypted
        task_queue=task_queue,
    )


@pytest.mark.timeout(300)
async def test_forget_leaves_no_canary_anywhere_and_the_chain_verifies(
    aios_client: AiosClient,
    temporal_client: Client,
    task_queue: str,
    effect_server: EffectServer,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    settings = aios_client.settings
    database_url = settings.resolved_database_url
    gone, kept = f"CANARY{uuid.uuid4().hex}", f"KEPT{uuid.uuid4().hex}"
    subject_gone, subject_kept = f"cust-{gone}", f"cust-{kept}"
    run_gone = await run_for(aios_client, effect_server, subject_gone, gone)
    run_kept = await run_for(aios_client, effect_server, subject_kept, kept)
    key_gone, key_kept = await charge_key(database_url, run_gone), await charge_key(database_url, run_kept)
    await webhook_for(settings, key_gone, gone)
    await webhook_for(settings, key_kept, kept)
    await compact(temporal_client, settings, task_queue, subject_gone, gone)
    assert gone in await postgres_text(database_url), "the canary reached Postgres before forget"

    forgot = aios_cli(settings, "memory", "forget", "--subject", subject_gone)
    assert forgot.returncode == 0, forgot.stderr
    assert "subject key(s) destroyed" in forgot.stdout

    assert gone not in await postgres_text(database_url)
    assert gone.encode() not in temporal_files(settings)
    assert gone not in file_text(settings.resolved_trace_file)
    assert gone not in file_text(*(Path(path) for path in log_files(settings).values()))
    assert gone not in caplog.text + forgot.stderr  # (its stdout names the subject it forgot)
    verified = aios_cli(settings, "audit", "verify")
    assert verified.returncode == 0, verified.stdout + verified.stderr

    vault = SubjectVault.for_settings(settings)
    async with await psycopg.AsyncConnection.connect(database_url) as conn:
        story_gone = await audit.run_story(conn, run_gone, vault=vault)
        story_kept = await audit.run_story(conn, run_kept, vault=vault)
        effect_gone = await effects.find(conn, key_gone, vault=vault)
        effect_kept = await effects.find(conn, key_kept, vault=vault)
        event_gone = await effects.first_webhook_event(conn, key_gone, vault=vault)
        event_kept = await effects.first_webhook_event(conn, key_kept, vault=vault)
    assert story_gone and all(row.detail == {"forgotten": FORGOTTEN} for row in story_gone)
    assert story_kept and all(row.detail.get("manifest_version") for row in story_kept)
    assert await sealed_rows(database_url, run_kept) == len(story_kept), "stored sealed, read opened"
    assert effect_gone is not None and effect_gone.state == "succeeded"
    assert effect_gone.response == {"forgotten": FORGOTTEN}
    assert effect_kept is not None and kept in str(effect_kept.response)
    assert event_gone is not None and event_gone["response"] == {"forgotten": FORGOTTEN}
    assert event_kept is not None and event_kept["response"] == {"receipt": f"paid {kept}"}
    shown = aios_cli(settings, "audit", run_gone, "--json")
    assert shown.returncode == 0 and FORGOTTEN in shown.stdout, shown.stdout + shown.stderr
