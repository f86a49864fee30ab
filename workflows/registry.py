"""`WORKFLOWS`: the one registry of workflows (a module of its own: see workflows/__init__.py)."""

from __future__ import annotations

from workflows.agent_run import AgentRunWorkflow
from workflows.compaction import CompactionWorkflow
from workflows.dispatch import DispatchRunWorkflow
from workflows.drift import DriftCheckWorkflow
from workflows.notifications import DigestWorkflow, NotifyWorkflow
from workflows.ping import PingWorkflow
from workflows.reconcile import ReconcileEffectWorkflow
from workflows.retention import RetentionWorkflow

WORKFLOWS: list[type] = [AgentRunWorkflow, PingWorkflow, ReconcileEffectWorkflow, CompactionWorkflow]
WORKFLOWS += [RetentionWorkflow, DispatchRunWorkflow, NotifyWorkflow, DigestWorkflow]
WORKFLOWS += [DriftCheckWorkflow]
