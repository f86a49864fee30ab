"""The drift check: read the runs, compare, and record an alarm for what moved.

An alarm is one audit row (action `drift`, outcome `alarm`) per agent, version, comparison
and day: its event key names all four, so a check rerun the same day (a retried activity, a
second Schedule fire, `aios agents drift-check`) records nothing new. The inbox shows the
alarms of the last day (aios/drift/inbox.py).
"""

from __future__ import annotations

from datetime import date, datetime
from typing import Any

from psycopg import AsyncConnection

from aios.drift.compare import agent_comparisons, spans
from aios.drift.facts import agents_with_runs, live_canary, run_facts
from aios.governance.audit import AuditEntry, append
from aios.models.drift import Comparison, DriftReport, DriftWindows, MetricRow
from aios.models.run import budget_day

DRIFT_RUN = "drift"  # the audit rows' run id: alarms are about agents, not one run
DRIFT_ACTION = "drift"
ALARM = "alarm"


async def compare_agent(
    conn: AsyncConnection[Any], agent: str, *, as_of: datetime, windows: DriftWindows
) -> list[Comparison]:
    """The agent's comparisons at `as_of`: each version against its baseline, a canary against live."""
    (start, _), (_, end) = spans(as_of, windows)
    runs = await run_facts(conn, agent, start, end)
    canary = await live_canary(conn, agent)
    return agent_comparisons(agent, runs, as_of=as_of, windows=windows, canary=canary)


async def check_drift(conn: AsyncConnection[Any], *, as_of: datetime, windows: DriftWindows) -> DriftReport:
    """Compare every agent that ran since the baseline began; record an alarm for each
    comparison where something moved."""
    (since, _), _ = spans(as_of, windows)
    comparisons: list[Comparison] = []
    for agent in await agents_with_runs(conn, since):
        comparisons += await compare_agent(conn, agent, as_of=as_of, windows=windows)
    day = budget_day(as_of)
    entries = [alarm_entry(comparison, day) for comparison in comparisons if comparison.moved]
    appended = await append(conn, entries)
    return DriftReport(
        comparisons=comparisons,
        alarms=[entry.event_key for entry in entries],
        new_alarms=sum(1 for written in appended if written.newly_recorded),
    )


def alarm_key(comparison: Comparison, day: date) -> str:
    return f"drift:{comparison.agent}:{comparison.version}:{comparison.kind}:{day.isoformat()}"


def alarm_entry(comparison: Comparison, day: date) -> AuditEntry:
    """The audit row of what moved: each metric with both sides' values and its statistic."""
    moved = comparison.moved
    return AuditEntry(
        event_key=alarm_key(comparison, day),
        run_id=DRIFT_RUN,
        step=comparison.kind,
        actor="drift-check",
        action=DRIFT_ACTION,
        outcome=ALARM,
        rationale=f"{comparison.agent} {comparison.version} vs {comparison.against}: "
        + "; ".join(describe(row) for row in moved),
        detail={
            "agent": comparison.agent,
            "version": comparison.version,
            "against": comparison.against,
            "day": day.isoformat(),
            "window_from": comparison.window_from.isoformat(),
            "window_to": comparison.window_to.isoformat(),
            "baseline_runs": comparison.baseline_runs,
            "window_runs": comparison.window_runs,
            "moved": [row.model_dump(mode="json", exclude={"schema_version"}) for row in moved],
        },
        manifest_version=comparison.version,
    )


def describe(row: MetricRow) -> str:
    """`approval_rate 0.10 -> 0.35 (z +5.1 (n 400/60))`: what moved and by how much."""
    return f"{row.metric} {value_text(row.baseline)} -> {value_text(row.window)} ({row.statistic})"


def value_text(value: float | dict[str, float]) -> str:
    if isinstance(value, dict):
        return " ".join(f"{key}:{share:.0%}" for key, share in value.items()) or "-"
    return f"{value:.4g}"
