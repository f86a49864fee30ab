"""The audit trail's records."""

from __future__ import annotations

from typing import Any

from pydantic import Field

from aios.models.base import Payload


class AuditEvent(Payload):
    """One step or decision, as written to the audit trail."""

    event_key: str = Field(description="idempotency key: the same event is recorded once")
    run_id: str
    step: str
    actor: str
    action: str
    outcome: str
    rationale: str = ""
    detail: dict[str, Any] = Field(default_factory=dict)


class AuditReceipt(Payload):
    audit_id: int
    newly_recorded: bool = Field(description="false when a retry found the row already there")
