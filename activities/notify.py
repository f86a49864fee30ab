"""Telling people: the `notify.send` activity delivers a notice through the effect ledger."""

from __future__ import annotations

from datetime import UTC, datetime

from temporalio import activity

from activities.actions import as_application_error, heartbeating
from activities.deps import ActivityDeps
from aios.approvals.approvers import ApproverBook
from aios.errors import NotificationHeld, application_error
from aios.inbox.collect import collect
from aios.models.notify import DigestRequest, Notice, NoticeOutcome
from aios.notify.delivery import Attempt, Notifier
from aios.notify.digest import day_of_work, digest_notice
from connectors.errors import ServerError


class NotifyActivities:
    def __init__(self, deps: ActivityDeps) -> None:
        self._deps = deps
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
        return self._settled(attempt)

    @activity.defn(name="notify.digest")
    async def digest(self, request: DigestRequest) -> NoticeOutcome:
        """Gather the day's digest (the open items, the day's work) and deliver it like a notice."""
        if not self._enabled:
            return NoticeOutcome()
        assert request.day is not None, "the Digest workflow names the day"
        temporal = self._deps.temporal
        if temporal is None:
            raise ServerError("this worker is not connected to Temporal yet; the digest is retried")
        async with heartbeating():
            async with self._deps.pool.connection() as conn:
                items = await collect(conn, temporal, self._deps.subjects)
                work = await day_of_work(conn)
            attempt = await self._notifier.send(digest_notice(request.day, request.recipients, items, work))
        return self._settled(attempt)

    @staticmethod
    def _settled(attempt: Attempt) -> NoticeOutcome:
        """The outcome, or the error that makes Temporal retry (a channel failed, quiet hours)."""
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
