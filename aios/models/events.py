"""Events: what the outside world or an agent announces, and what the subscribers made of it."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import Field

from aios.models.base import Payload
from aios.models.triggers import TOPIC_PATTERN

EVENT_ID_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.:@<>=+/-]{0,199}$"
DeliveryOutcome = Literal["pending", "dispatched", "skipped", "signalled", "queued"]


class Event(Payload):
    event_id: str = Field(pattern=EVENT_ID_PATTERN, description="the sender's id: the de-duplication key")
    topic: str = Field(pattern=TOPIC_PATTERN)
    data: dict[str, Any] = Field(default_factory=dict)
    source: str = Field(default="cli", max_length=200, description="cli, http, mail, or run:<id>")


class Delivery(Payload):
    """One subscriber's share of an event: the run it started, or why none."""

    event_id: str
    agent: str
    run_id: str
    outcome: DeliveryOutcome
    detail: str = ""
    run_status: str | None = Field(default=None, description="the run's last recorded status, if it has one")


class Published(Payload):
    event: Event
    new: bool = Field(description="false when the event id was already kept (a redelivery)")
    deliveries: list[Delivery] = Field(default_factory=list)
    received_at: datetime | None = None


class RunEvent(Payload):
    """An event delivered to a run that is already open for its subject (`on_busy: signal`)."""

    event_id: str
    topic: str
    data: dict[str, Any] = Field(default_factory=dict)
