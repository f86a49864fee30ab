"""Drift alarms on the real stack: a 20-point shift in an agent's action mix raises one alarm
(an audit row and an inbox item naming what moved), once a day however often the check runs;
an unchanged agent raises none; a live canary is compared with the live version; `aios agents
drift` prints the comparison and refuses bad input in one line; the daily Schedule runs the
same workflow.

The run mirrors are seeded in Postgres for speed (hundreds of runs spread over eight days),
each a copy of a real run's mirrored `RunState` with its steps chosen to make the mix wanted.
"""

from __future__ import annotations

import asyncio
import json
import subprocess
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from psycopg.types.json import Jsonb
from temporalio.client import Client

from aios.client import AiosClient
from aios.drift.schedule import DRIFT_SCHEDULE_ID
from aios.models.drift import DRIFT_WORKFLOW, DriftReport
from aios.models.inbox import InboxKind
from aios.models.run import RunState, RunStatus
from tests.support.cli import run_aios
from tests.support.env import child_env
from tests.support.inbox import item_for
from tests.support.manifests import noop_manifest, unique_agent
from tests.support.runs import wait_for_status

pytestmark = pytest.mark.integration

BASELINE_RUNS, WINDOW_RUNS = 350, 100
MIRROR = """
INSERT INTO aios_runs (run_id, agent, manifest_version, mode, status, paired_with, task, state,
                       started_at, updated_at)
VALUES (%s, %s, %s, 'live', %s, NULL, %s, %s, %s, %s)
"""
ALARMS = """
SELECT event_key, detail FROM aios_audit
WHERE run_id = 'drift' AND action = 'drift' AND outcome = 'alarm' AND detail->>'agent' = %s
"""


async def aios(client: AiosClient, *args: str) -> subprocess.CompletedProcess[str]:
    """The CLI in a thread (the worker answering it runs on this test's event loop)."""
    env = child_env(client.settings, COLUMNS="250", AIOS_TASK_QUEUE=client.settings.task_queue)
    return await asyncio.to_thread(run_aios, *args, env=env)


@pytest.fixture
async def template(aios_client: AiosClient) -> RunState:
    """A real run's mirror: a two-action agent run to completion with the offline model."""
    manifest = noop_manifest(2)
    started = await aios_client.start_run(manifest.name, {"customer": "c-drift"}, manifest=manifest)
    await wait_for_status(aios_client, started.run_id, RunStatus.COMPLETED)
    async with aios_client.connection() as conn:
        for _ in range(100):
            cursor = await conn.execute(
                "SELECT state FROM aios_runs WHERE run_id = %s AND status = 'completed'", (started.run_id,)
            )
            row = await cursor.fetchone()
            if row is not None:
                state = RunState.model_validate(row[0])
                assert [step.action for step in state.steps] == ["step_1", "step_2"], state
                return state
            await asyncio.sleep(0.1)
    raise AssertionError(f"{started.run_id} was never mirrored as completed")


def copy_with(template: RunState, agent: str, version: str, action: str) -> RunState:
    """The real run, renamed, with only its step (and proposal) of `action`."""
    step = next(step for step in template.steps if step.action == action)
    proposal = next(proposal for proposal in template.proposals if proposal.proposed.action == action)
    return template.model_copy(
        update={
            "run_id": f"{agent}-{uuid.uuid4().hex[:10]}",
            "agent": agent,
            "manifest_version": version,
            "steps": [step.model_copy(update={"step": 1})],
            "proposals": [proposal.model_copy(update={"step": 1})],
        }
    )


def mix(count: int, step_1_share: float) -> list[str]:
    ones = round(count * step_1_share)
    return ["step_1"] * ones + ["step_2"] * (count - ones)


async def seed(
    client: AiosClient,
    template: RunState,
    agent: str,
    version: str,
    *,
    baseline: float,
    window: float,
    window_runs: int = WINDOW_RUNS,
) -> None:
    """BASELINE_RUNS over the seven days before the last one, WINDOW_RUNS in the last day, with
    `baseline` and `window` the share of runs that took step_1 (the rest took step_2)."""
    now = datetime.now(UTC)
    rows: list[tuple[Any, ...]] = []
    spread = [
        (actions, start, span)
        for actions, start, span in (
            (mix(BASELINE_RUNS, baseline), now - timedelta(days=1, hours=1), timedelta(days=6, hours=22)),
            (mix(window_runs, window), now - timedelta(minutes=5), timedelta(hours=22)),
        )
    ]
    for actions, start, span in spread:
        for index, action in enumerate(actions):
            state = copy_with(template, agent, version, action)
            started = start - span * index / len(actions)
            rows.append(
                (
                    state.run_id,
                    agent,
                    version,
                    state.status.value,
                    Jsonb({}),
                    Jsonb(state.model_dump(mode="json")),
                    started,
                    started,
                )
            )
    async with client.connection() as conn:
        await conn.cursor().executemany(MIRROR, rows)


async def alarms(client: AiosClient, agent: str) -> list[tuple[str, dict[str, Any]]]:
    async with client.connection() as conn:
        cursor = await conn.execute(ALARMS, (agent,))
        return [(str(key), detail) for key, detail in await cursor.fetchall()]


async def test_a_shifted_mix_raises_one_alarm_and_an_unchanged_agent_none(
    aios_client: AiosClient, template: RunState
) -> None:
    shifted, steady = unique_agent("drift"), unique_agent("steady")
    version = template.manifest_version
    await seed(aios_client, template, shifted, version, baseline=0.5, window=0.3)  # 20 points
    await seed(aios_client, template, steady, version, baseline=0.5, window=0.5)

    report = await aios_client.check_drift()
    by_agent = {comparison.agent: comparison for comparison in report.comparisons}
    assert by_agent[steady].enough and by_agent[steady].moved == []
    assert [row.metric for row in by_agent[shifted].moved] == ["action_mix"]
    assert await alarms(aios_client, steady) == []
    [(key, detail)] = await alarms(aios_client, shifted)
    assert key == f"drift:{shifted}:{version}:baseline:{datetime.now(UTC).date().isoformat()}"
    [moved] = detail["moved"]
    assert moved["metric"] == "action_mix" and moved["statistic"].startswith("psi ")
    assert moved["baseline"] == {"step_1": 0.5, "step_2": 0.5}
    assert moved["window"] == {"step_1": 0.3, "step_2": 0.7}
    assert (detail["baseline_runs"], detail["window_runs"]) == (BASELINE_RUNS, WINDOW_RUNS)

    item = await item_for(aios_client, f"drift:{shifted}:{version}:baseline")
    assert item is not None and item.kind is InboxKind.DRIFT_ALARM and item.agent == shifted
    assert item.command == f"aios agents drift {shifted}" and "action_mix" in item.title
    assert "action_mix step_1:50% step_2:50% -> step_1:30% step_2:70%" in item.context["summary"]
    assert not any(found.agent == steady for found in await aios_client.inbox())

    again = await aios_client.check_drift()  # the same day: the alarm is there already
    assert any(key.startswith(f"drift:{shifted}:") for key in again.alarms)
    assert len(await alarms(aios_client, shifted)) == 1


async def test_a_live_canary_is_compared_with_the_live_version(
    aios_client: AiosClient, template: RunState
) -> None:
    agent = unique_agent("canary")
    live = template.manifest_version
    candidate = noop_manifest(3, name=agent)
    # 200 runs a side in the same window: a 20-point difference is significant (p < 0.001)
    await seed(aios_client, template, agent, live, baseline=0.5, window=0.5, window_runs=200)
    await seed(aios_client, template, agent, candidate.version, baseline=0.3, window=0.3, window_runs=200)
    await aios_client.start_canary(candidate, share=0.5)
    try:
        comparisons = await aios_client.drift(agent)
    finally:
        await aios_client.end_canary(agent)
    canary = next(comparison for comparison in comparisons if comparison.kind == "canary")
    assert (canary.version, canary.against) == (candidate.version, f"live {live}")
    assert [row.metric for row in canary.moved] == ["action_mix"]
    own = [comparison for comparison in comparisons if comparison.kind == "baseline"]
    assert {comparison.version for comparison in own} == {live, candidate.version}
    assert all(comparison.moved == [] for comparison in own)  # each version is steady on its own


async def test_the_cli_prints_the_comparison_and_refuses_bad_input(
    aios_client: AiosClient, template: RunState
) -> None:
    shifted, sparse = unique_agent("drift"), unique_agent("sparse")
    await seed(aios_client, template, shifted, template.manifest_version, baseline=0.5, window=0.3)
    async with aios_client.connection() as conn:  # five runs in the window, none before
        state = copy_with(template, sparse, template.manifest_version, "step_1")
        for index in range(5):
            row = state.model_copy(update={"run_id": f"{sparse}-{index}"})
            await conn.execute(
                MIRROR,
                (
                    row.run_id,
                    sparse,
                    row.manifest_version,
                    "completed",
                    Jsonb({}),
                    Jsonb(row.model_dump(mode="json")),
                    datetime.now(UTC),
                    datetime.now(UTC),
                ),
            )

    printed = await aios(aios_client, "agents", "drift", shifted)
    assert printed.returncode == 0, printed
    assert f"{shifted} {template.manifest_version} vs baseline" in printed.stdout
    action_mix = next(line for line in printed.stdout.splitlines() if "action_mix" in line)
    assert "MOVED" in action_mix and "psi" in action_mix
    assert "drift: action_mix" in printed.stdout

    as_json = await aios(aios_client, "agents", "drift", shifted, "--json")
    [comparison] = json.loads(as_json.stdout)
    assert [row["metric"] for row in comparison["metrics"] if row["moved"]] == ["action_mix"]

    few = await aios(aios_client, "agents", "drift", sparse)
    assert few.returncode == 0 and "too few runs to judge (at least 20 on each side): no alarm" in few.stdout
    assert "MOVED" not in few.stdout

    unknown = await aios(aios_client, "agents", "drift", "no-such-agent-x")
    assert unknown.returncode == 3 and unknown.stdout == ""
    assert unknown.stderr.strip() == (
        "error: no agent named 'no-such-agent-x': no manifest and no recorded run; "
        "`aios agents list` shows the agents"
    )
    bad_time = await aios(aios_client, "agents", "drift-schedule", "--at", "6 o'clock")
    assert bad_time.returncode == 2 and len(bad_time.stderr.strip().splitlines()) == 1
    assert "not a time of day; give HH:MM" in bad_time.stderr


async def test_the_daily_schedule_runs_the_drift_check(
    aios_client: AiosClient, temporal_client: Client
) -> None:
    scheduled = await aios(aios_client, "agents", "drift-schedule", "--at", "06:00")
    assert scheduled.returncode == 0 and "every day at 06:00 UTC" in scheduled.stdout, scheduled
    try:
        handle = temporal_client.get_schedule_handle(DRIFT_SCHEDULE_ID)
        described = await handle.describe()
        [calendar] = described.schedule.spec.calendars
        assert (calendar.hour[0].start, calendar.minute[0].start) == (6, 0)
        before = datetime.now(UTC) - timedelta(seconds=5)
        await handle.trigger()
        query = (
            f"WorkflowType = '{DRIFT_WORKFLOW}' AND WorkflowId STARTS_WITH '{DRIFT_SCHEDULE_ID}-20' "
            f"AND StartTime > '{before.isoformat()}'"
        )
        fired: list[str] = []
        for _ in range(150):
            fired = [execution.id async for execution in temporal_client.list_workflows(query)]
            if fired:
                break
            await asyncio.sleep(0.1)
        assert fired, "the Schedule's fire never showed"
        report = await temporal_client.get_workflow_handle(fired[0], result_type=DriftReport).result()
        assert isinstance(report, DriftReport)
    finally:
        removed = await aios(aios_client, "agents", "drift-unschedule")
    assert removed.returncode == 0 and "drift check unscheduled" in removed.stdout, removed
    assert (await aios(aios_client, "agents", "drift-unschedule")).stdout.strip() == (
        "no drift check was scheduled"
    )
