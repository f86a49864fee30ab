"""The only door to the world. `build_activities` is the one registry of activities."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from activities.actions import ActionActivities
from activities.admission import AdmissionActivities
from activities.agent import AgentActivities
from activities.approvals import ApprovalActivities
from activities.audit import AuditActivities
from activities.compaction import CompactionActivities
from activities.delegation import DelegationActivities
from activities.deps import ActivityDeps
from activities.drift import DriftActivities
from activities.memory import MemoryActivities
from activities.notify import NotifyActivities
from activities.reconcile import ReconcileActivities
from activities.retention import RetentionActivities


def build_activities(deps: ActivityDeps) -> list[Callable[..., Any]]:
    """Every activity the worker registers, bound to this process's dependencies."""
    audit = AuditActivities(deps.pool)
    actions = ActionActivities(deps, deps.connectors)
    agent = AgentActivities(deps, actions=actions)
    reconcile = ReconcileActivities(deps)
    memory = MemoryActivities(deps, deps.memory, deps.memory_unavailable)
    compaction = CompactionActivities(deps)
    return [
        audit.record,
        agent.acquire_slot,
        agent.release_slot,
        agent.recall,
        agent.think,
        agent.record,
        actions.execute,
        reconcile.check,
        reconcile.resolve,
        reconcile.read_ledger,
        memory.remember,
        memory.recall,
        memory.forget,
        compaction.candidates,
        compaction.summarise,
        compaction.check,
        compaction.commit,
        compaction.undo,
        RetentionActivities(deps).apply,
        *_admission(deps),
        DelegationActivities(deps).admit,
        *_notify(deps),
        ApprovalActivities(deps).verify_link,
        DriftActivities(deps).check,
    ]


def _admission(deps: ActivityDeps) -> list[Callable[..., Any]]:
    admission = AdmissionActivities(deps)
    return [admission.start, admission.await_end]


def _notify(deps: ActivityDeps) -> list[Callable[..., Any]]:
    notify = NotifyActivities(deps)
    return [notify.send, notify.digest]
