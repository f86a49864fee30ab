"""Delivering a notice: one effect per (notice, recipient, channel), through the ledger.

Each delivery's key names the run, the notice's kind and place, the recipient and the
channel, so a retried activity or a replayed workflow finds it in the ledger and never sends
it again. Just before the message leaves, its row is marked `unknown`: a worker killed while
sending leaves it so, and the retry does not send a second copy (the operator sees it in
`aios effects` and the inbox). A failure the channel reports (refused, not reachable) puts it
back to `pending`, and the retry sends it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Literal

import httpx
from psycopg_pool import AsyncConnectionPool

from aios.approvals.approvers import Approver, ApproverBook
from aios.ledger import effects
from aios.models.notify import Notice, NoticeOutcome
from aios.notify import webhook
from aios.notify.message import Message, compose
from connectors.actions.base import ActionConnector, EffectRequest
from connectors.errors import ConnectFailed, ConnectorError, TimeoutError_, TransportError

Channel = Literal["email", "webhook"]
Delivered = Literal["delivered", "in_doubt", "failed"]
IN_FLIGHT = """
UPDATE aios_effects SET state = 'unknown', updated_at = now() WHERE effect_key = %s AND state = 'pending'
"""


def channels(approver: Approver) -> list[Channel]:
    found: list[Channel] = []
    if approver.email:
        found.append("email")
    if approver.webhook:
        found.append("webhook")
    return found


def state_after(error: ConnectorError) -> effects.EffectState:
    """What the ledger says after a failed send: unknown if the message may have left."""
    if isinstance(error, ConnectFailed):
        return "pending"
    if isinstance(error, TimeoutError_ | TransportError):
        return "unknown"
    return "pending" if error.retryable else "failed"


@dataclass
class Attempt:
    """One try at a notice: what was delivered, and the first failure worth a retry."""

    unreachable: list[str]
    delivered: list[str] = field(default_factory=list)
    in_doubt: list[str] = field(default_factory=list)
    held_until: datetime | None = None
    retry: ConnectorError | None = None

    @property
    def outcome(self) -> NoticeOutcome:
        return NoticeOutcome(
            delivered=self.delivered,
            in_doubt=self.in_doubt,
            unreachable=self.unreachable,
            held_until=self.held_until,
        )


class Notifier:
    def __init__(
        self,
        pool: AsyncConnectionPool,
        book: ApproverBook,
        *,
        email: ActionConnector | None,
        http: httpx.AsyncClient,
        base_url: str,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self._pool, self._book, self._email, self._http = pool, book, email, http
        self._base_url, self._clock = base_url, clock

    async def send(self, notice: Notice) -> Attempt:
        """Deliver to every recipient not in quiet hours; `retry` is the first retryable failure."""
        recipients = list(dict.fromkeys(notice.recipients))
        async with self._pool.connection() as conn:
            approvers = await self._book.find(conn, recipients)
        attempt = Attempt(unreachable=[name for name in recipients if name not in approvers])
        now = self._clock()
        for name in recipients:
            approver = approvers.get(name)
            if approver is not None:
                await self._to_approver(notice, approver, now, attempt)
        return attempt

    async def _to_approver(self, notice: Notice, approver: Approver, now: datetime, attempt: Attempt) -> None:
        quiet = None if notice.urgent else approver.quiet_until(now)
        if quiet is not None:
            attempt.held_until = min(quiet, attempt.held_until or quiet)
            return
        message = compose(notice, approver, self._base_url, now)
        for channel in channels(approver):
            key = notice.effect_key(approver.name, channel)
            try:
                result = await self._deliver(notice, approver, channel, key, message)
            except ConnectorError as error:
                if error.retryable and attempt.retry is None:
                    attempt.retry = error
                continue
            if result == "delivered":
                attempt.delivered.append(key)
            elif result == "in_doubt":
                attempt.in_doubt.append(key)

    async def _deliver(
        self, notice: Notice, approver: Approver, channel: Channel, key: str, message: Message
    ) -> Delivered:
        request = {"kind": notice.kind, "ref": notice.ref, "recipient": approver.name, "channel": channel}
        async with self._pool.connection() as conn:
            record = await effects.begin(
                conn,
                key=key,
                run_id=notice.run_id,
                action=f"notify:{notice.kind}",
                connector=channel,
                request=request,
            )
            if record.finished:
                return "delivered" if record.state == "succeeded" else "failed"
            if record.state == "unknown":
                return "in_doubt"  # an earlier attempt died while sending: never a second copy
            await conn.execute(IN_FLIGHT, (key,))
        try:
            response = await self._send(notice, approver, channel, key, message)
        except ConnectorError as error:
            async with self._pool.connection() as conn:
                await effects.finish(conn, key=key, state=state_after(error), error=str(error))
            raise
        async with self._pool.connection() as conn:
            await effects.finish(conn, key=key, state="succeeded", response=response)
        return "delivered"

    async def _send(
        self, notice: Notice, approver: Approver, channel: Channel, key: str, message: Message
    ) -> dict[str, Any]:
        if channel == "webhook":
            assert approver.webhook is not None
            payload = message.webhook_json(notice, approver.name)
            return await webhook.post(
                self._http, approver.webhook, payload, secret=approver.secret, idempotency_key=key
            )
        if self._email is None:
            raise ConnectFailed("email: no SMTP connector in this worker")
        params = {"to": approver.email, "subject": message.subject, "body": message.body}
        return await self._email.perform(
            EffectRequest(idempotency_key=key, action=f"notify:{notice.kind}", params=params)
        )
