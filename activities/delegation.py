"""Admitting a delegating run's child: the same admission as every start, plus two limits.

The parent workflow starts its child itself (a Temporal child workflow, so cancelling the
parent cancels the child), but only with an input admission made: the child's manifest found
by name, its agent's daily budget, its kill switch, the canary split, the input's size. Before
that, the depth and fan-out limits (settings) refuse runaway delegation, an agent delegating
to itself in a cycle included. Every refusal is one final line the parent records.
"""

from __future__ import annotations

from temporalio import activity

from activities.deps import ActivityDeps
from aios.errors import AdmissionRefused, DelegationRefused, InputTooLarge, ManifestInvalid, application_error
from aios.governance.admission import Admission, shadow_run_id, summary
from aios.models.delegation import ChildAdmitted, ChildRequest
from aios.models.run import Cause, CauseKind
from aios.models.start import StartRequest
from aios.settings import Settings


class DelegationActivities:
    def __init__(self, deps: ActivityDeps) -> None:
        self._deps = deps

    @activity.defn(name="delegation.admit")
    async def admit(self, request: ChildRequest) -> ChildAdmitted:
        """The child's admitted input; DelegationRefused (final) when it may not start."""
        temporal = self._deps.temporal
        if temporal is None:
            raise RuntimeError("this worker has no Temporal client for admission (workers/main.py sets it)")
        refusal = limit_refusal(request, self._deps.settings)
        if refusal:
            raise application_error(DelegationRefused, refusal, non_retryable=True)
        admission = Admission(temporal, self._deps.settings, self._deps.pool.connection)
        start = StartRequest(
            agent=request.agent,
            task=request.task,
            cause=Cause(kind=CauseKind.RUN, ref=request.parent_run_id),
            run_id=request.child_run_id,
            task_queue=request.task_queue,
            delegation=request.delegation,
        )
        try:
            admitted = await admission.admit(start)
        except (AdmissionRefused, InputTooLarge, ManifestInvalid) as refused:
            where = f"step {request.step} ({request.action})"
            message = f"{where} may not delegate to {request.agent!r}: {refused}"
            raise application_error(DelegationRefused, message, non_retryable=True) from refused
        shadow_id = None
        if admitted.shadow is not None:
            # A shadow records what the candidate would do; nobody waits for it, so it is no child.
            shadow_id = shadow_run_id(admitted.run_id)
            await admission.start_workflow(admitted.shadow, shadow_id, request.task_queue)
        live, run_id = admitted.live, admitted.run_id
        return ChildAdmitted(run_id=run_id, input=live, summary=summary(live), shadow_run_id=shadow_id)


def limit_refusal(request: ChildRequest, settings: Settings) -> str:
    """Why the depth or fan-out limit refuses this child, in one line; "" when neither does."""
    where = f"step {request.step} ({request.action}) of run {request.parent_run_id}"
    depth, max_depth = request.delegation.depth, settings.delegation_max_depth
    if depth > max_depth:
        return (
            f"delegation refused: {where} would start {request.agent!r} at depth {depth}, over the "
            f"limit of {max_depth} (AIOS_DELEGATION_MAX_DEPTH); is an agent delegating in a cycle?"
        )
    started, max_children = request.children, settings.delegation_max_children
    if started >= max_children:
        return (
            f"delegation refused: {where} would start child run {started + 1}, over the limit of "
            f"{max_children} per run (AIOS_DELEGATION_MAX_CHILDREN)"
        )
    return ""
