"""What the measured runs' Temporal histories hold, per run: workflow tasks, activities, events.

Read by bench/profile_run.py (the per-run table of docs/PROFILE.md) and by the realistic side by
side (the Temporal server's floor: its CPU per workflow task times the tasks a run needs).
"""

from __future__ import annotations

import statistics
from collections import Counter
from dataclasses import dataclass

from temporalio.api.enums.v1 import EventType
from temporalio.api.history.v1 import HistoryEvent

from aios.client import AiosClient
from aios.settings import Settings

VISIBILITY_EVENTS = {
    EventType.EVENT_TYPE_UPSERT_WORKFLOW_SEARCH_ATTRIBUTES,
    EventType.EVENT_TYPE_WORKFLOW_PROPERTIES_MODIFIED,
}


@dataclass
class HistoryCounts:
    """Per-run means over the measured runs' histories, their child workflows' included."""

    runs: int
    events: float
    workflow_tasks: float
    activities: float
    local_activities: float
    patch_markers: float  # workflow.patched: a marker event each, no work beside it
    visibility_writes: float
    timers: float
    children: float  # child workflows (a notice per approval): each one more sandbox and history


async def history_counts(settings: Settings, run_ids: list[str]) -> HistoryCounts:
    client = await AiosClient.connect(settings)
    per_run: list[Counter[str]] = []
    for run_id in run_ids:
        counts: Counter[str] = Counter()
        pending = [run_id]
        while pending:  # the run, then the children it started
            history = await client.temporal.get_workflow_handle(pending.pop()).fetch_history()
            for event in history.events:
                counts[_kind(event)] += 1
                if event.event_type == EventType.EVENT_TYPE_START_CHILD_WORKFLOW_EXECUTION_INITIATED:
                    pending.append(
                        event.start_child_workflow_execution_initiated_event_attributes.workflow_id
                    )
        per_run.append(counts)

    def mean(*kinds: str) -> float:
        return statistics.fmean(sum(counts[kind] for kind in kinds) for counts in per_run)

    workflows = mean(_name(EventType.EVENT_TYPE_WORKFLOW_EXECUTION_STARTED))
    return HistoryCounts(
        runs=len(per_run),
        events=statistics.fmean(sum(counts.values()) for counts in per_run),
        workflow_tasks=mean(_name(EventType.EVENT_TYPE_WORKFLOW_TASK_COMPLETED)),
        activities=mean(_name(EventType.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED)),
        local_activities=mean(LOCAL_ACTIVITY_MARKER),
        patch_markers=mean(PATCH_MARKER),
        # Every workflow's start and close write its visibility record too, besides the upserts.
        visibility_writes=mean(*(_name(kind) for kind in VISIBILITY_EVENTS)) + 2 * workflows,
        timers=mean(_name(EventType.EVENT_TYPE_TIMER_STARTED)),
        children=workflows - 1,
    )


LOCAL_ACTIVITY_MARKER = "core_local_activity"
PATCH_MARKER = "core_patch"


def _name(event_type: int) -> str:
    return EventType.Name(event_type)  # type: ignore[arg-type]


def _kind(event: HistoryEvent) -> str:
    """The event's type, or for a marker its name (local activity or patch)."""
    if event.event_type == EventType.EVENT_TYPE_MARKER_RECORDED:
        return event.marker_recorded_event_attributes.marker_name
    return _name(event.event_type)
