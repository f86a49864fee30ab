"""Deliberate changes to AgentRun, to prove the replay tests notice an incompatible one.

Both variants register under the real name "AgentRun" and add a short timer before the
run's first command (the slot activity), which no recorded history contains. Unguarded,
that must fail replay; behind `workflow.patched`, old histories take the old path and
replay cleanly, the way a real change to the workflow has to be made.
"""

from __future__ import annotations

from datetime import timedelta

from temporalio import workflow

from workflows.agent_run import AgentRunWorkflow

with workflow.unsafe.imports_passed_through():
    from aios.models.run import RunInput, RunState

EXTRA_WAIT = timedelta(seconds=1)
PATCH_ID = "replay-check-extra-wait"


@workflow.defn(name="AgentRun")
class UnpatchedExtraWait(AgentRunWorkflow):
    """Starts a timer where the histories scheduled an activity: nondeterministic."""

    @workflow.run
    async def run(self, request: RunInput) -> RunState:
        await workflow.sleep(EXTRA_WAIT)
        return await super().run(request)


@workflow.defn(name="AgentRun")
class PatchedExtraWait(AgentRunWorkflow):
    """The same change behind a patch: only runs started on this code wait."""

    @workflow.run
    async def run(self, request: RunInput) -> RunState:
        if workflow.patched(PATCH_ID):
            await workflow.sleep(EXTRA_WAIT)
        return await super().run(request)
