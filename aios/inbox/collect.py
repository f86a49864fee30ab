"""Gathering the inbox: the Postgres mirrors say what waits, Temporal's visibility what is open.

A run's mirror (aios_runs) is written at every step, so it says what each run waits for
without querying a thousand workflows; one visibility listing of the open AgentRuns drops
mirrors of runs that ended without a last record (terminated). Only runs that look quiet
too long are described one by one, to find a workflow task that keeps failing.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from typing import Any

from psycopg import AsyncConnection
from temporalio.api.workflowservice.v1 import ListWorkflowExecutionsRequest
from temporalio.client import Client
from temporalio.service import RPCError

from aios.drift.inbox import drift_alarms
from aios.errors import AiosError, RunStuck
from aios.governance.admission import AGENT_RUN
from aios.governance.manifests import find_manifest
from aios.governance.subjects import Opener, SubjectVault
from aios.inbox.fires import skipped_schedule_fires
from aios.inbox.items import (
    approval_item,
    breaker_item,
    budget_item,
    needs_operator_item,
    stuck_item,
    unknown_effect_item,
)
from aios.ledger import health
from aios.models.inbox import InboxItem
from aios.models.run import RunState, RunStatus
from aios.temporal.search_attributes import STATE_KEY
from aios.temporal.server_errors import diagnose_stuck

WAITING = (RunStatus.WAITING_APPROVAL, RunStatus.PAUSED_BUDGET, RunStatus.NEEDS_OPERATOR)
# A run that is running but has not written its mirror for this long is checked for a failing task.
QUIET_AFTER = timedelta(seconds=30)
MAX_DESCRIBED = 20  # describes per inbox read, at most
DESCRIBE_CONCURRENCY = 8
VISIBILITY_LIMIT = 10_000
REPORTED_PROBLEMS = "TemporalReportedProblems IS NOT NULL"
BREAKER_FRESH_SECONDS = 120

WAITING_RUNS = """
SELECT run_id, agent, status, state, updated_at FROM aios_runs
WHERE status = ANY(%s) ORDER BY updated_at
"""
# The most recently active waiting runs (a decision that crashed the task leaves the mirror
# waiting), then running runs whose mirror has been quiet a while, newest first: a run that just
# got stuck must not wait behind old ones for one of the few describes of a read.
QUIET_RUNS = """
(SELECT run_id, agent FROM aios_runs
 WHERE status IN ('waiting_approval', 'paused_budget', 'needs_operator') ORDER BY updated_at DESC LIMIT %(n)s)
UNION ALL
(SELECT run_id, agent FROM aios_runs
 WHERE status IN ('running', 'queued') AND updated_at < now() - make_interval(secs => %(quiet)s)
 ORDER BY updated_at DESC LIMIT %(n)s)
"""
BUDGET_REASONS = """
SELECT DISTINCT ON (run_id) run_id, rationale FROM aios_audit
WHERE run_id = ANY(%s) AND action = 'budget' AND outcome = 'paused' ORDER BY run_id, id DESC
"""
UNKNOWN_EFFECTS = """
SELECT effect_key, run_id, action, connector, attempts, error, updated_at FROM aios_effects
WHERE state = 'unknown' ORDER BY updated_at LIMIT 1000
"""

ExtraSource = Callable[[AsyncConnection[Any], Client], Awaitable[list[InboxItem]]]


EXTRA_SOURCES: list[ExtraSource] = [skipped_schedule_fires, drift_alarms]
"""Kinds of items read from elsewhere: refused schedule fires, drift alarms."""


async def collect(
    conn: AsyncConnection[Any], temporal: Client, vault: SubjectVault | None = None
) -> list[InboxItem]:
    """Every item that needs a person, oldest first (`vault` opens what runs recorded sealed)."""
    open_runs = await _open_runs(temporal)
    items = await _run_items(conn, open_runs, vault)
    doubted = {item.context.get("effect_key") for item in items}
    items += [item for item in await _unknown_effects(conn) if item.context["effect_key"] not in doubted]
    items += await _breakers(conn)
    items += await _stuck_runs(conn, temporal, open_runs)
    for source in EXTRA_SOURCES:
        items += await source(conn, temporal)
    return sorted(items, key=lambda item: item.since)


async def _open_runs(temporal: Client, only: str = "") -> dict[str, datetime]:
    """The AgentRuns Temporal lists as running (`only` those matching it too): id -> start time.

    Read from the raw listing: the SDK's `list_workflows` decodes every run's search attributes
    and memo, half a second of CPU for a thousand runs, to give two fields."""
    query = f"WorkflowType = '{AGENT_RUN}' AND ExecutionStatus = 'Running'" + (f" AND {only}" if only else "")
    request = ListWorkflowExecutionsRequest(namespace=temporal.namespace, query=query)
    found: dict[str, datetime] = {}
    while len(found) < VISIBILITY_LIMIT:
        request.page_size = min(1000, VISIBILITY_LIMIT - len(found))  # never past the limit
        page = await temporal.workflow_service.list_workflow_executions(request, retry=True)
        for info in page.executions:
            found[info.execution.workflow_id] = info.start_time.ToDatetime(tzinfo=UTC)
        if not page.next_page_token:
            break
        request.next_page_token = page.next_page_token
    return found


async def _run_items(
    conn: AsyncConnection[Any], open_runs: dict[str, datetime], vault: SubjectVault | None
) -> list[InboxItem]:
    cursor = await conn.execute(WAITING_RUNS, ([status.value for status in WAITING],))
    rows = [row for row in await cursor.fetchall() if row[0] in open_runs]
    budget_runs = [row[0] for row in rows if row[2] == RunStatus.PAUSED_BUDGET.value]
    reasons = await _budget_reasons(conn, budget_runs, vault)
    items: list[InboxItem] = []
    for _run_id, _agent, status, raw_state, updated_at in rows:
        state = RunState.model_validate(raw_state)
        item = _run_item(RunStatus(status), state, updated_at, reasons)
        if item is not None:
            items.append(item)
    return items


def _run_item(
    status: RunStatus, state: RunState, updated_at: datetime, reasons: dict[str, str]
) -> InboxItem | None:
    if status is RunStatus.WAITING_APPROVAL:
        return approval_item(state, updated_at)
    if status is RunStatus.PAUSED_BUDGET:
        return budget_item(state, updated_at, reasons.get(state.run_id, ""), _caps(state))
    return needs_operator_item(state, updated_at)


async def _budget_reasons(
    conn: AsyncConnection[Any], run_ids: list[str], vault: SubjectVault | None
) -> dict[str, str]:
    """Why each run paused: its audit row's rationale (sealed with the run's subject key)."""
    if not run_ids:
        return {}
    cursor = await conn.execute(BUDGET_REASONS, (run_ids,))
    rows = await cursor.fetchall()
    opener = await vault.opener(conn, [row[1] for row in rows]) if vault else Opener({})
    return {str(run_id): str(opener.open(rationale)) for run_id, rationale in rows}


def _caps(state: RunState) -> dict[str, Any]:
    """The agent's budget caps, when its manifest file is still the run's version."""
    try:
        manifest = find_manifest(state.agent)
    except AiosError:
        return {}
    if manifest.version != state.manifest_version:
        return {"caps": f"manifest changed since the run started (now {manifest.version})"}
    budget = manifest.budget
    return {
        "tokens_per_run": budget.tokens_per_run,
        "cost_per_run": budget.cost_per_run,
        "tokens_per_day": budget.tokens_per_day,
        "cost_per_day": budget.cost_per_day,
    }


async def _unknown_effects(conn: AsyncConnection[Any]) -> list[InboxItem]:
    cursor = await conn.execute(UNKNOWN_EFFECTS)
    columns = [column.name for column in cursor.description or []]
    return [unknown_effect_item(dict(zip(columns, row, strict=True))) for row in await cursor.fetchall()]


async def _breakers(conn: AsyncConnection[Any]) -> list[InboxItem]:
    by_connector: dict[str, list[dict[str, Any]]] = {}
    for row in await health.recent(conn, BREAKER_FRESH_SECONDS):
        by_connector.setdefault(str(row["connector"]), []).append(row)
    return [
        breaker_item(connector, rows)
        for connector, rows in sorted(by_connector.items())
        if any(row["state"] == "open" for row in rows)
    ]


async def _stuck_runs(
    conn: AsyncConnection[Any], temporal: Client, open_runs: dict[str, datetime]
) -> list[InboxItem]:
    return [stuck_item(problem, agent) for problem, agent in await stuck_runs(conn, temporal, open_runs)]


async def stuck_runs(
    conn: AsyncConnection[Any], temporal: Client, open_runs: dict[str, datetime]
) -> list[tuple[RunStuck, str | None]]:
    """Open runs described to learn whether their workflow task keeps failing: those Temporal
    reports problems for (server 1.28 on), the most recently active waiting ones (a decision
    that crashed the task leaves the mirror waiting), running ones whose mirror has been quiet
    a while, then those with no mirror, newest first, at most MAX_DESCRIBED per read.

    Returns:
        (what fails, the run's agent when its mirror names it) per stuck run.
    """
    cursor = await conn.execute(QUIET_RUNS, {"quiet": QUIET_AFTER.total_seconds(), "n": MAX_DESCRIBED})
    quiet = {str(run_id): str(agent) for run_id, agent in await cursor.fetchall() if run_id in open_runs}
    mirrored = await _mirrored(conn, list(open_runs))
    cutoff = datetime.now(UTC) - QUIET_AFTER
    newest_first = sorted(open_runs.items(), key=lambda run: run[1], reverse=True)
    unmirrored = {
        run_id: None for run_id, started in newest_first if run_id not in mirrored and started < cutoff
    }
    reported = {run_id: None for run_id in await _reported_problems(temporal)}
    candidates: dict[str, str | None] = {**reported, **quiet, **unmirrored}
    chosen = list(candidates.items())[:MAX_DESCRIBED]
    gate = asyncio.Semaphore(DESCRIBE_CONCURRENCY)

    async def check(run_id: str, agent: str | None) -> tuple[RunStuck, str | None] | None:
        async with gate:
            problem = await diagnose_stuck(temporal, run_id)
        return (problem, agent) if problem is not None else None

    found = await asyncio.gather(*(check(run_id, agent) for run_id, agent in chosen))
    return [each for each in found if each is not None]


async def waiting_for_decision(
    conn: AsyncConnection[Any], temporal: Client
) -> tuple[list[RunState], list[RunStuck]]:
    """The open runs waiting at an approval gate, oldest wait first, from their mirrors (no
    query per run: a thousand waiting runs list in one read), and the stuck ones, which no
    decision reaches, apart. Visibility lists only the runs whose `AiosState` says they wait:
    a mirror left waiting by a run that was terminated is not listed, and the open runs doing
    something else are not read (on the dev server each listed run costs about a millisecond)."""
    open_runs = await _open_runs(temporal, only=f"{STATE_KEY.name} = '{RunStatus.WAITING_APPROVAL.value}'")
    stuck = await stuck_runs(conn, temporal, open_runs)
    stuck_ids = {problem.run_id for problem, _ in stuck}
    cursor = await conn.execute(WAITING_RUNS, ([RunStatus.WAITING_APPROVAL.value],))
    states = [
        RunState.model_validate(raw_state)
        for run_id, _agent, _status, raw_state, _updated in await cursor.fetchall()
        if run_id in open_runs and run_id not in stuck_ids
    ]
    return [state for state in states if state.pending_approval is not None], [p for p, _ in stuck]


async def _reported_problems(temporal: Client) -> list[str]:
    """Open AgentRuns whose workflow task the server reports failing (TemporalReportedProblems,
    server 1.28 on); an older server, which does not know the attribute, reports none."""
    query = f"WorkflowType = '{AGENT_RUN}' AND ExecutionStatus = 'Running' AND {REPORTED_PROBLEMS}"
    try:
        return [execution.id async for execution in temporal.list_workflows(query, limit=MAX_DESCRIBED)]
    except RPCError:
        return []


async def _mirrored(conn: AsyncConnection[Any], run_ids: list[str]) -> set[str]:
    if not run_ids:
        return set()
    cursor = await conn.execute("SELECT run_id FROM aios_runs WHERE run_id = ANY(%s)", (run_ids,))
    return {str(row[0]) for row in await cursor.fetchall()}
