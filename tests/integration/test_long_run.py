"""A run of 500 model turns stays far below Temporal's history limits, in one history or many.

Each test prints the events and bytes of every history the run used (`pytest -s` shows them).
"""

from __future__ import annotations

from dataclasses import dataclass

import psycopg
from temporalio.client import Client

from aios.client import AiosClient
from aios.models.manifest import AgentManifest, BudgetSpec
from aios.models.run import RunState, RunStatus
from aios.settings import Settings
from tests.support.manifests import noop_manifest
from tests.support.runs import audit_story, chain_histories

TURNS = 500  # the manifest's maximum: 499 actions, then the turn in which the model says done
# Temporal's own limits (dev server and Cloud): a history is refused past these.
EVENT_LIMIT = 51_200
BYTE_LIMIT = 50 * 1024 * 1024
FAR_BELOW = 10  # "far below": under a tenth of either limit
HAND_OVER_AT = 50  # events (the least a run accepts): a 500-turn run hands over several times


@dataclass(frozen=True)
class History:
    run_id: str
    events: int
    bytes: int


def _long_manifest() -> AgentManifest:
    roomy = BudgetSpec(tokens_per_run=10_000_000, cost_per_run=1_000.0, tokens_per_day=1_000_000_000)
    return noop_manifest(TURNS - 1, budget=roomy, turn_limit=TURNS)


async def _histories(client: Client, workflow_id: str) -> list[History]:
    """Events and bytes of every history of the run, oldest first."""
    return [
        History(history.run_id, len(history.events), sum(event.ByteSize() for event in history.events))
        for history in await chain_histories(client, workflow_id)
    ]


async def _assert_every_step_once(settings: Settings, final: RunState) -> None:
    assert final.status is RunStatus.COMPLETED, final.outcome
    assert final.turn == TURNS
    executed = [step.step for step in final.steps if step.status == "executed"]
    assert executed == list(range(1, TURNS)), "every action once, in order, none lost in a hand-over"
    async with await psycopg.AsyncConnection.connect(settings.resolved_database_url) as conn:
        cursor = await conn.execute(
            "SELECT state, count(*) FROM aios_effects WHERE run_id = %s GROUP BY state", (final.run_id,)
        )
        assert dict(await cursor.fetchall()) == {"succeeded": TURNS - 1}
    story = await audit_story(settings, final.run_id)
    rows, distinct = len(story), len({row.event_key for row in story})
    assert rows == distinct > 2 * (TURNS - 1), "each step audited, no key written twice"


def _report(label: str, histories: list[History]) -> str:
    parts = [f"{h.events} events / {h.bytes / 1024:.0f} KiB" for h in histories]
    line = f"{label}: {TURNS} turns in {len(histories)} histories: " + ", ".join(parts)
    print(line)
    return line


def _assert_far_below_limits(histories: list[History], report: str) -> None:
    for history in histories:
        assert history.events < EVENT_LIMIT / FAR_BELOW, report
        assert history.bytes < BYTE_LIMIT / FAR_BELOW, report


async def test_500_turns_in_one_history_stay_far_below_the_limits(
    aios_client: AiosClient, temporal_client: Client, stack_settings: Settings
) -> None:
    manifest = _long_manifest()
    started = await aios_client.start_run(manifest.name, {"subject": "long"}, manifest=manifest)
    final = await aios_client.result(started.run_id)
    histories = await _histories(temporal_client, started.run_id)
    report = _report("default threshold", histories)
    assert len(histories) == 1, report
    _assert_far_below_limits(histories, report)
    await _assert_every_step_once(stack_settings, final)


async def test_a_long_run_continues_as_new_and_loses_nothing(
    aios_client: AiosClient, temporal_client: Client, stack_settings: Settings
) -> None:
    manifest = _long_manifest()
    started = await aios_client.start_run(
        manifest.name, {"subject": "long"}, manifest=manifest, max_history_events=HAND_OVER_AT
    )
    final = await aios_client.result(started.run_id)
    histories = await _histories(temporal_client, started.run_id)
    report = _report(f"continue-as-new past {HAND_OVER_AT} events", histories)
    assert len(histories) >= 3, report
    # Length is seen at the end of a workflow task, every CHECKPOINT_TURNS turns at the latest
    # (a few dozen events), so a history ends within that of the threshold.
    assert all(history.events < HAND_OVER_AT + 50 for history in histories), report
    _assert_far_below_limits(histories, report)
    await _assert_every_step_once(stack_settings, final)
