"""Workflow variants with a deliberate bug, for tests of what a stuck run looks like.

A module of its own with few imports: the worker's sandbox imports it for every run.
"""

from __future__ import annotations

from temporalio import workflow

from workflows.agent_run import AgentRunWorkflow
from workflows.approval_gate import Verdict

with workflow.unsafe.imports_passed_through():
    from aios.models.run import Decision, RunInput, RunState

BROKEN = "deliberately broken approval handler"


@workflow.defn(name="AgentRun")
class BrokenApprovals(AgentRunWorkflow):
    """AgentRun with a bug in the approval path: every workflow task that takes one fails."""

    @workflow.run
    async def run(self, request: RunInput) -> RunState:
        return await super().run(request)

    async def _signalled_decision(self, verdict: Verdict, decision: Decision) -> None:
        raise RuntimeError(BROKEN)
