"""Telling people: the `notify.send` activity delivers a notice through the effect ledger."""

from __future__ import annotations

from datetime import UTC, datetime

from temporalio import activity

from activities.actions import as_application_error, heartbeating
from activities.deps import ActivityDeps
from aios.approvals.approvers import ApproverBook
from aios.errors import NotificationHeld, application_error
from aios.models.notify import Notice, NoticeOutcome
from aios.notify.delivery import Notifier


class NotifyActivities:
    def __init__(self, deps: ActivityDeps) -> None:
        self._enabled = deps.settings.notify
        self._notifier = Notifier(
            deps.pool,
            ApproverBook.for_settings(deps.settings),
            email=deps.connectors.get("email"),
            http=deps.http,
            base_url=deps.settings.resolved_approvals_url,
        )

    @activity.defn(name="notify.send")
    async def send(self, notice: Notice) -> NoticeOutcome:
        """Deliver to each recipient once; retried on a channel's transient failure, and held
        (a retry scheduled for then) while a recipient is in quiet hours."""
        if not self._enabled:
            return NoticeOutcome()
        async with heartbeating():
            attempt = await self._notifier.send(notice)
        if attempt.retry is not None:
            raise as_application_error(attempt.retry)
        held = attempt.held_until
        if held is not None:
            raise application_error(
                NotificationHeld,
                f"quiet hours: the rest of this notice goes at {held.isoformat(timespec='minutes')}",
                non_retryable=False,
                next_retry_delay=max(held - datetime.now(UTC), NotificationHeld.minimum_delay),
            )
        return attempt.outcome
