"""`aios report` on the real stack: its figures are what the ledger and the audit trail hold.

Runs of one agent: one the policy lets through, one a person pauses, approves and resumes
(and whose effect in doubt is settled with `aios effects resolve`), one a person rejects
(compensated), and one shadow run (not counted). The expected figures are counted here from the runs'
final states, their audit rows and the effect ledger, never written down as numbers.
"""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import yaml

from aios.client import AiosClient
from aios.ledger import effects
from aios.models.manifest import AgentManifest
from aios.models.report import AgentValue
from aios.models.run import RunState, RunStatus
from tests.support.cli import run_aios
from tests.support.effect_server import EffectServer
from tests.support.env import child_env
from tests.support.manifests import refund_like_manifest
from tests.support.runs import audit_story, wait_for_status

SMALL = {"customer": "c-1", "amount": 40}  # under the approval threshold of 100
LARGE = {"customer": "c-2", "amount": 250}  # over it: payout needs approval
VALUE = {"minutes_saved_per_run": 7.5, "minutes_saved_per_action": {"payout": 4}}
PER_TOUCH = 1.5
PEOPLE = ("alice", "bob")


def valued(manifest: AgentManifest) -> AgentManifest:
    return AgentManifest.model_validate({**manifest.model_dump(mode="json"), "value": VALUE})


async def _approved_after_a_pause(client: AiosClient, manifest: AgentManifest) -> RunState:
    started = await client.start_run(manifest.name, LARGE, manifest=manifest)
    await wait_for_status(client, started.run_id, RunStatus.WAITING_APPROVAL)
    # Settled while the run goes on, the run records the nudge too: still one touch.
    await _settle_an_effect_in_doubt(client, started.run_id)
    await client.pause(started.run_id, by="bob", reason="checking the order")
    await client.decide(started.run_id, "approve", approver="alice")
    await wait_for_status(client, started.run_id, RunStatus.PAUSED)
    await client.resume(started.run_id, by="bob")
    return await client.result(started.run_id)


async def _rejected(client: AiosClient, manifest: AgentManifest) -> RunState:
    started = await client.start_run(manifest.name, LARGE, manifest=manifest)
    await wait_for_status(client, started.run_id, RunStatus.WAITING_APPROVAL)
    await client.decide(started.run_id, "reject", approver="alice", note="not this one")
    return await client.result(started.run_id)


async def _auto(client: AiosClient, manifest: AgentManifest) -> RunState:
    started = await client.start_run(manifest.name, SMALL, manifest=manifest)
    return await client.result(started.run_id)


async def _settle_an_effect_in_doubt(client: AiosClient, run_id: str) -> None:
    """An effect of the run whose outcome nobody knows (made here: no connector is made to
    fail), settled by a person with `aios effects resolve`'s call."""
    key = f"{run_id}/step-9/payout"
    async with client.connection() as conn:
        await effects.begin(conn, key=key, run_id=run_id, action="payout", connector="http", request={})
        await effects.finish(conn, key=key, state="unknown", error="timed out")
    await client.resolve_effect(key, applied=True, by="bob", note="the bank shows it")


async def _expected(client: AiosClient, finals: list[RunState]) -> AgentValue:
    """The report's row, counted from the runs, their audit rows and the effect ledger."""
    live = [final for final in finals if final.mode == "live"]
    completed = [final for final in live if final.status is RunStatus.COMPLETED]
    compensated = [final for final in live if final.status is RunStatus.COMPENSATED]
    rows = [row for final in live for row in await audit_story(client.settings, final.run_id)]
    verdicts = sum(1 for row in rows if row.actor in PEOPLE and row.outcome in ("approve", "reject"))
    resumes = sum(1 for row in rows if row.actor in PEOPLE and row.action == "resume")
    async with client.connection() as conn:
        cursor = await conn.execute(
            "SELECT count(*) FROM aios_effects WHERE run_id = ANY(%s) AND resolved_by IS NOT NULL",
            ([final.run_id for final in live],),
        )
        resolved = (await cursor.fetchone() or (0,))[0]
    payouts = sum(
        1
        for final in completed
        for step in final.steps
        if step.action == "payout" and step.status == "executed"
    )
    touches = verdicts + resumes + resolved
    gross = (
        len(completed) * VALUE["minutes_saved_per_run"]
        + payouts * VALUE["minutes_saved_per_action"]["payout"]
    )
    return AgentValue(
        agent=live[0].agent,
        runs=len(live),
        completed=len(completed),
        compensated=len(compensated),
        other=len(live) - len(completed) - len(compensated),
        approvals=verdicts,
        resumes=resumes,
        resolutions=resolved,
        touches=touches,
        touches_per_run=touches / len(live),
        minutes_saved_gross=gross,
        minutes_touched=touches * PER_TOUCH,
        minutes_saved_net=gross - touches * PER_TOUCH,
        tokens=sum(final.tokens_spent for final in live),
        cost=sum(final.cost_spent for final in live),
        value_declared=True,
    )


def _same(found: AgentValue, expected: AgentValue) -> None:
    assert found.model_dump(exclude={"cost", "touches_per_run"}) == expected.model_dump(
        exclude={"cost", "touches_per_run"}
    )
    assert abs(found.cost - expected.cost) < 1e-6
    assert abs(found.touches_per_run - expected.touches_per_run) < 1e-9


async def test_the_report_matches_the_ledger(
    aios_client: AiosClient, effect_server: EffectServer, tmp_path: Path
) -> None:
    since = datetime.now(UTC) - timedelta(minutes=1)
    manifest = valued(refund_like_manifest(effect_server.url))
    shadow = refund_like_manifest(effect_server.url, name=manifest.name, mode="shadow")
    finals = await asyncio.gather(
        _auto(aios_client, manifest),
        _approved_after_a_pause(aios_client, manifest),
        _rejected(aios_client, manifest),
        _auto(aios_client, shadow),
    )
    statuses = [(final.mode, final.status) for final in finals]
    assert statuses == [
        ("live", RunStatus.COMPLETED),
        ("live", RunStatus.COMPLETED),
        ("live", RunStatus.COMPENSATED),
        ("shadow", RunStatus.COMPLETED),
    ]
    expected = await _expected(aios_client, list(finals))
    # What the story above must have produced, so the comparison below compares something.
    assert (expected.runs, expected.approvals, expected.resumes, expected.resolutions) == (3, 2, 1, 1)
    assert expected.tokens > 0

    found = await aios_client.report(
        since=since, agent=manifest.name, minutes_per_touch=PER_TOUCH, manifests=[manifest]
    )
    assert [row.agent for row in found.agents] == [manifest.name]
    _same(found.agents[0], expected)
    _same(found.total, expected.model_copy(update={"agent": "total"}))

    later = await aios_client.report(since=datetime.now(UTC), agent=manifest.name, manifests=[manifest])
    assert (later.agents[0].runs, later.agents[0].touches) == (0, 0)

    # The command, with the manifest in an agents directory and the touch's cost as a setting.
    (tmp_path / f"{manifest.name}.yaml").write_text(yaml.safe_dump(manifest.model_dump(mode="json")))
    env = child_env(
        aios_client.settings,
        COLUMNS="250",
        AIOS_AGENTS_DIR=str(tmp_path),
        AIOS_MINUTES_PER_TOUCH=str(PER_TOUCH),
    )
    window = ("--agent", manifest.name, "--since", since.isoformat())
    # In a thread: the worker of this test shares its event loop.
    result = await asyncio.to_thread(run_aios, "report", "--json", *window, env=env)
    assert result.returncode == 0, result.stderr
    shown = json.loads(result.stdout)
    _same(AgentValue.model_validate(shown["agents"][0]), expected)
    assert shown["minutes_per_touch"] == PER_TOUCH

    table = await asyncio.to_thread(run_aios, "report", *window, env=env)
    assert table.returncode == 0, table.stderr
    line = next(line for line in table.stdout.splitlines() if manifest.name in line)
    cells = [cell.strip() for cell in line.strip("│ ").split("│")]
    assert cells[:6] == [manifest.name, "3", str(expected.completed), str(expected.compensated), "0", "4"]
    assert cells[7:9] == [f"{expected.minutes_saved_gross:g}", f"{expected.minutes_saved_net:g}"]
