"""Admission on the real stack: a trigger's start (DispatchRun, as a Schedule or an event
starts it) gets the same checks as `aios run`, records what started the run, starts nothing
twice, and records a firing that started nothing instead of raising."""

from __future__ import annotations

import uuid

from temporalio.client import Client

from aios.client import AiosClient
from aios.models.manifest import BudgetSpec
from aios.models.run import Cause, CauseKind, RunStatus
from aios.models.start import StartOutcome, StartRequest
from aios.temporal.search_attributes import CAUSE_KEY
from tests.support.manifests import noop_manifest
from tests.support.runs import audit_outcomes, audit_story, wait_for_status


async def dispatch(client: AiosClient, request: StartRequest) -> StartOutcome:
    """What a Schedule's action does: start DispatchRun and wait for its outcome."""
    return await client.temporal.execute_workflow(
        "DispatchRun",
        request,
        id=f"dispatch-{uuid.uuid4().hex[:10]}",
        task_queue=client.settings.task_queue,
        result_type=StartOutcome,
    )


async def test_a_triggered_start_records_its_cause_and_starts_once(
    aios_client: AiosClient, temporal_client: Client
) -> None:
    manifest = noop_manifest(1)
    cause = Cause(kind=CauseKind.EVENT, ref=f"evt-{uuid.uuid4().hex[:8]}")
    request = StartRequest(
        agent=manifest.name,
        task={"subject": "s-1"},
        cause=cause,
        run_id=f"{manifest.name}-once",
        manifest=manifest,
    )

    first = await dispatch(aios_client, request)
    again = await dispatch(aios_client, request)

    assert (first.outcome, again.outcome) == ("started", "duplicate")
    await wait_for_status(aios_client, first.run_id, RunStatus.COMPLETED)
    described = await temporal_client.get_workflow_handle(first.run_id).describe()
    assert described.typed_search_attributes.get(CAUSE_KEY) == cause.label
    assert (await audit_outcomes(aios_client.settings, first.run_id))[0] == (cause.label, "start", "started")
    started = (await audit_story(aios_client.settings, first.run_id))[0]
    assert started.detail["cause"] == cause.label


async def test_a_paused_agent_s_trigger_is_skipped_and_recorded(aios_client: AiosClient) -> None:
    manifest = noop_manifest(1)
    await aios_client.pause_agent(manifest.name, by="test")
    cause = Cause(kind=CauseKind.SCHEDULE, ref="nightly")
    request = StartRequest(
        agent=manifest.name, cause=cause, run_id=f"{manifest.name}-paused", manifest=manifest
    )

    outcome = await dispatch(aios_client, request)

    assert outcome.outcome == "skipped" and "paused" in outcome.reason, outcome
    assert await audit_outcomes(aios_client.settings, outcome.run_id) == [
        ("schedule:nightly", "start", "skipped")
    ]
    # A person asking for the same agent still gets a run, paused, as before triggers existed.
    started = await aios_client.start_run(manifest.name, {}, manifest=manifest)
    await wait_for_status(aios_client, started.run_id, RunStatus.PAUSED)


async def test_a_trigger_over_the_daily_budget_is_skipped(aios_client: AiosClient) -> None:
    manifest = noop_manifest(1, budget=BudgetSpec(tokens_per_day=1))
    request = StartRequest(
        agent=manifest.name, cause=Cause(kind=CauseKind.EVENT, ref="evt-budget"), manifest=manifest
    )

    outcome = await dispatch(aios_client, request)

    assert outcome.outcome == "skipped" and "daily budget" in outcome.reason, outcome
