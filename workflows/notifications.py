"""Telling people what a run waits for or did: each notice is one `notify.send` activity.

Started and not awaited: a slow or unreachable mail server never holds the run, and the
activity's retries (and quiet hours) play out on their own. The activity delivers each
recipient's copy once through the effect ledger, so a replay or a retry sends nothing twice.
Runs from before notifications (versions.py, operator-notifications) send none.
"""

from __future__ import annotations

import asyncio
from datetime import timedelta
from typing import Any

from temporalio import workflow
from temporalio.common import RetryPolicy

from workflows.versions import NOTIFY_PATCH

with workflow.unsafe.imports_passed_through():
    from activities.notify import NotifyActivities
    from aios.models.manifest import ActionSpec, AgentManifest, RiskClass
    from aios.models.notify import Notice, NoticeKind
    from aios.models.run import PendingApproval

NOTIFY_TIMEOUT = timedelta(seconds=60)
# The activity heartbeats while it sends: a killed worker's notice is retried in seconds.
NOTIFY_HEARTBEAT_TIMEOUT = timedelta(seconds=2)
NOTIFY_RETRY = RetryPolicy(
    initial_interval=timedelta(seconds=1), backoff_coefficient=2.0, maximum_interval=timedelta(minutes=5)
)
# A notice nobody could receive within two days is given up (the inbox still shows the item).
NOTIFY_HORIZON = timedelta(days=2)
RECALLED_SHOWN = 3


def notify(notice: Notice) -> None:
    """Send the notice in the background (a run from before notifications sends nothing)."""
    if not notice.recipients or not workflow.patched(NOTIFY_PATCH):
        return
    handle = workflow.start_activity_method(
        NotifyActivities.send,
        notice,
        start_to_close_timeout=NOTIFY_TIMEOUT,
        heartbeat_timeout=NOTIFY_HEARTBEAT_TIMEOUT,
        schedule_to_close_timeout=NOTIFY_HORIZON,
        retry_policy=NOTIFY_RETRY,
    )
    handle.add_done_callback(_swallow)


def _swallow(done: asyncio.Future[Any]) -> None:
    """A notice that failed for good leaves its trace in the ledger; the run goes on."""
    if not done.cancelled():
        done.exception()


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
