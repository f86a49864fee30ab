"""Telling people what a run waits for or did: each notice is one `Notify` child workflow.

The child runs the `notify.send` activity with its retries (and quiet hours) on its own, and
outlives its run (parent close policy ABANDON): a run that ends, or continues as new, right
after a notice (an auto_and_notify last step, an approval that expired into a rejection)
would otherwise take the notice's pending activity down with it. The run waits only for the
child to start. The activity delivers each recipient's copy once through the effect ledger,
and the child's id names the notice, so a replay or a retry sends nothing twice. Runs from
before notifications (versions.py, operator-notifications) send none.
"""

from __future__ import annotations

import contextlib
from datetime import timedelta
from typing import Any

from temporalio import workflow
from temporalio.common import RetryPolicy, WorkflowIDReusePolicy
from temporalio.exceptions import ActivityError, WorkflowAlreadyStartedError

from workflows.versions import NOTIFY_PATCH

with workflow.unsafe.imports_passed_through():
    from activities.notify import NotifyActivities
    from aios.models.manifest import ActionSpec, AgentManifest, RiskClass
    from aios.models.notify import DigestRequest, Notice, NoticeKind, NoticeOutcome
    from aios.models.run import PendingApproval

NOTIFY_WORKFLOW = "Notify"
NOTIFY_TIMEOUT = timedelta(seconds=60)
# The activity heartbeats while it sends: a killed worker's notice is retried in seconds.
NOTIFY_HEARTBEAT_TIMEOUT = timedelta(seconds=2)
NOTIFY_RETRY = RetryPolicy(
    initial_interval=timedelta(seconds=1), backoff_coefficient=2.0, maximum_interval=timedelta(minutes=5)
)
# A notice nobody could receive within two days is given up (the inbox still shows the item).
NOTIFY_HORIZON = timedelta(days=2)
DIGEST_WORKFLOW = "Digest"
DIGEST_HORIZON = timedelta(hours=20)  # past it, the next day's digest says it all
RECALLED_SHOWN = 3


@workflow.defn(name=NOTIFY_WORKFLOW)
class NotifyWorkflow:
    """Delivers one notice; a notice that failed for good leaves its trace in the ledger."""

    @workflow.run
    async def run(self, notice: Notice) -> None:
        try:
            await workflow.execute_activity_method(
                NotifyActivities.send,
                notice,
                start_to_close_timeout=NOTIFY_TIMEOUT,
                heartbeat_timeout=NOTIFY_HEARTBEAT_TIMEOUT,
                schedule_to_close_timeout=NOTIFY_HORIZON,
                retry_policy=NOTIFY_RETRY,
            )
        except ActivityError as error:
            workflow.logger.warning("notice %s given up: %s", notice_workflow_id(notice), error.cause)


@workflow.defn(name=DIGEST_WORKFLOW)
class DigestWorkflow:
    """Sends the day's digest (aios/notify/digest.py): started by the `aios-digest` Schedule or
    `aios digest send`; the day is the workflow's, so a retry or replay names the same one."""

    @workflow.run
    async def run(self, request: DigestRequest) -> NoticeOutcome:
        today = request.model_copy(update={"day": request.day or workflow.now().date()})
        return await workflow.execute_activity_method(
            NotifyActivities.digest,
            today,
            start_to_close_timeout=NOTIFY_TIMEOUT,
            heartbeat_timeout=NOTIFY_HEARTBEAT_TIMEOUT,
            schedule_to_close_timeout=DIGEST_HORIZON,
            retry_policy=NOTIFY_RETRY,
        )


def notice_workflow_id(notice: Notice) -> str:
    """One id per notice: `notify-RUN/KIND/REF` (a second start of it is refused)."""
    return f"notify-{notice.run_id}/{notice.kind}/{notice.ref}"


async def notify(notice: Notice) -> None:
    """Start the notice's delivery and go on (a run from before notifications sends nothing)."""
    if not notice.recipients or not workflow.patched(NOTIFY_PATCH):
        return
    # Already started: the notice went out before (a run continued as new, then met the same event).
    with contextlib.suppress(WorkflowAlreadyStartedError):
        await workflow.start_child_workflow(
            NotifyWorkflow.run,
            notice,
            id=notice_workflow_id(notice),
            parent_close_policy=workflow.ParentClosePolicy.ABANDON,
            id_reuse_policy=WorkflowIDReusePolicy.REJECT_DUPLICATE,
        )


def approval_notice(
    kind: NoticeKind,
    *,
    run_id: str,
    manifest: AgentManifest,
    pending: PendingApproval,
    recipients: list[str],
    recalled: list[str],
    summary: str,
) -> Notice:
    spec = manifest.actions.get(pending.action)
    return Notice(
        kind=kind,
        run_id=run_id,
        agent=manifest.name,
        ref=f"step-{pending.step}",
        recipients=recipients,
        summary=summary,
        step=pending.step,
        action=pending.action,
        amount=pending.amount,
        context={
            "params": pending.params or {},
            "rationale": pending.rationale,
            "confidence": pending.confidence,
            "rule": pending.grade_reason,
            "recalled": recalled[:RECALLED_SHOWN],
            "approvers": pending.approvers,
            "remind_at": _iso(pending.remind_at),
            "escalate_at": _iso(pending.escalate_at),
            "expire_at": _iso(pending.expire_at),
            "on_expiry": pending.on_expiry,
        },
        links_expire=pending.expire_at,
        urgent=critical(spec),
    )


def run_notice(
    kind: NoticeKind,
    *,
    run_id: str,
    manifest: AgentManifest,
    ref: str,
    summary: str,
    step: int | None = None,
    action: str = "",
    amount: float | None = None,
    context: dict[str, Any] | None = None,
) -> Notice:
    """A notice for the agent's approvers about the run (not a decision)."""
    return Notice(
        kind=kind,
        run_id=run_id,
        agent=manifest.name,
        ref=ref,
        recipients=list(manifest.policy.approvers),
        summary=summary,
        step=step,
        action=action,
        amount=amount,
        context=context or {},
        urgent=critical(manifest.actions.get(action)),
    )


def critical(spec: ActionSpec | None) -> bool:
    """Critical notices reach people even in their quiet hours."""
    return spec is not None and spec.risk is RiskClass.CRITICAL


def _iso(moment: Any) -> str | None:
    return moment.isoformat(timespec="seconds") if moment is not None else None
