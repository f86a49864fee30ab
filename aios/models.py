"""Domain models shared by workflows, activities and clients: pure pydantic, no I/O.

Every workflow, signal, update, query and activity input/output is one of these, and
carries a schema version so that stored histories stay readable as the models grow.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field

SCHEMA_VERSION = 1


class Payload(BaseModel):
    """Base of every model that crosses a Temporal boundary."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    schema_version: int = SCHEMA_VERSION


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


class PingInput(Payload):
    """The walking skeleton: a message that travels client -> workflow -> activity -> Postgres."""

    message: str = Field(min_length=1, max_length=2000)
    actor: str = Field(default="operator", min_length=1, max_length=200)


class PingResult(Payload):
    workflow_id: str
    message: str
    audit_id: int
