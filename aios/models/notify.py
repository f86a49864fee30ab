"""What a run asks the notifier to tell people (the `notify.send` activity's messages)."""

from __future__ import annotations

from datetime import date, datetime
from typing import Any, Literal

from pydantic import Field

from aios.models.base import Payload

NoticeKind = Literal[
    "approval_requested",
    "approval_reminder",
    "approval_escalated",
    "approval_expired",
    "auto_and_notify",
    "budget_pause",
    "needs_operator",
    "digest",  # the daily digest (aios/notify/digest.py): not about one run
]
# The kinds whose message carries approve and reject links.
DECISION_KINDS = frozenset({"approval_requested", "approval_reminder", "approval_escalated"})


class Notice(Payload):
    """One event to tell people about, once each: its key names run, kind and where (`ref`)."""

    kind: NoticeKind
    run_id: str
    agent: str
    ref: str = Field(description="where in the run: step-3, turn-2; with kind and run, the event's identity")
    recipients: list[str] = Field(description="approver names (records made by `aios approvers add`)")
    summary: str = Field(description="one line: what happened and what is asked")
    step: int | None = None
    action: str = ""
    amount: float | None = None
    context: dict[str, Any] = Field(default_factory=dict, description="what a person needs to decide")
    links_expire: datetime | None = Field(default=None, description="decision links stop working then")
    urgent: bool = Field(default=False, description="critical: delivered even in quiet hours")

    @property
    def decision_links(self) -> bool:
        return self.kind in DECISION_KINDS and self.step is not None

    def effect_key(self, recipient: str, channel: str) -> str:
        return f"{self.run_id}/notify/{self.kind}/{self.ref}/{recipient}/{channel}"


class DigestRequest(Payload):
    """What the Digest workflow sends, and to whom (approver names)."""

    recipients: list[str] = Field(min_length=1, description="approver names (`aios approvers add`)")
    day: date | None = Field(default=None, description="the digest's day; the workflow sets today's")


class NoticeOutcome(Payload):
    delivered: list[str] = Field(default_factory=list, description="effect keys delivered (now or before)")
    in_doubt: list[str] = Field(default_factory=list, description="a crash mid-send: never sent twice")
    unreachable: list[str] = Field(default_factory=list, description="recipients with no approver record")
    held_until: datetime | None = Field(default=None, description="quiet hours: the rest goes then")
