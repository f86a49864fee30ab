"""What a notice says: a subject, a plain-text body, and for a decision its two signed links."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from aios.approvals.approvers import Approver
from aios.approvals.links import make_token
from aios.models.notify import Notice

DEFAULT_LINK_LIFETIME = timedelta(hours=24)
TITLES = {
    "approval_requested": "asks for your approval",
    "approval_reminder": "reminder: still waiting for your approval",
    "approval_escalated": "escalated to you: waiting for approval",
    "approval_expired": "approval expired: the default was applied",
    "auto_and_notify": "acted without approval (the policy asks to tell you)",
    "budget_pause": "paused on its budget",
    "needs_operator": "needs you: an effect's outcome is unknown",
    "digest": "daily digest",
}


@dataclass(frozen=True)
class Message:
    subject: str
    body: str
    approve_url: str | None
    reject_url: str | None

    def webhook_json(self, notice: Notice, recipient: str) -> dict[str, object]:
        """A body chat tools accept (`text`), with the structured notice beside it."""
        return {
            "text": f"{self.subject}\n{self.body}",
            "kind": notice.kind,
            "run_id": notice.run_id,
            "agent": notice.agent,
            "step": notice.step,
            "action": notice.action,
            "amount": notice.amount,
            "recipient": recipient,
            "context": notice.context,
            "approve_url": self.approve_url,
            "reject_url": self.reject_url,
        }


def decision_url(base_url: str, approver: Approver, notice: Notice, verdict: str, now: datetime) -> str:
    assert notice.step is not None
    expires = notice.links_expire or now + DEFAULT_LINK_LIFETIME
    token = make_token(
        approver.secret,
        run_id=notice.run_id,
        step=notice.step,
        verdict="approve" if verdict == "approve" else "reject",
        approver=approver.name,
        expires=expires.astimezone(UTC),
    )
    return f"{base_url}/a/{token}"


def compose(notice: Notice, approver: Approver, base_url: str, now: datetime) -> Message:
    approve = reject = None
    if notice.decision_links:
        approve = decision_url(base_url, approver, notice, "approve", now)
        reject = decision_url(base_url, approver, notice, "reject", now)
    subject = f"[aios] {notice.agent} {TITLES[notice.kind]}"
    subject += f": {notice.action}" if notice.action else ""
    subject += f" ({notice.amount:g})" if notice.amount is not None else ""
    lines = [notice.summary, ""]
    if notice.kind != "digest":
        lines.append(f"run: {notice.run_id}")
    if notice.step is not None:
        lines.append(f"step: {notice.step}")
    for name, value in notice.context.items():
        if value not in (None, "", [], {}):
            lines.append(f"{name}: {value if isinstance(value, str) else json.dumps(value, default=str)}")
    if approve and reject:
        lines += ["", f"Approve: {approve}", f"Reject:  {reject}", ""]
        lines.append("Each link asks you to confirm, works once, and only for this step.")
    lines += ["", "Everything waiting for a person: aios inbox"]
    return Message(subject=subject, body="\n".join(lines), approve_url=approve, reject_url=reject)
