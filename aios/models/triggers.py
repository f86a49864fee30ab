"""What starts an agent besides a person: its manifest's `triggers:`.

    triggers:
      schedule:
        - name: weekday-mornings
          cron: "0 9 * * 1-5"
          timezone: Europe/Paris
          task: {batch: overdue}
      event:
        - topic: refund.requested
          task: {customer: "$.customer", amount: "$.amount"}
      on_busy: signal

Every trigger starts its runs through admission (aios/governance/admission.py), like `aios run`.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any, Literal

from pydantic import Field

from aios.models.base import Strict

TRIGGER_NAME_PATTERN = r"^[a-z][a-z0-9-]{0,62}$"
TOPIC_PATTERN = r"^[a-z][a-z0-9_.-]{0,126}$"


class ScheduleTrigger(Strict):
    """A Temporal Schedule owned by aios: `cron` or `every`, never both."""

    name: str = Field(pattern=TRIGGER_NAME_PATTERN)
    cron: str | None = None
    every: timedelta | None = Field(default=None, gt=timedelta(0))
    timezone: str = "UTC"
    jitter: timedelta = Field(default=timedelta(0), ge=timedelta(0))
    overlap: Literal["skip", "buffer_one", "allow"] = "skip"
    catchup_window: timedelta = Field(default=timedelta(minutes=5), ge=timedelta(seconds=10))
    task: dict[str, Any] = Field(default_factory=dict, description="each fired run's task")


class EventTrigger(Strict):
    """A topic the agent subscribes to, and how an event's data becomes the run's task."""

    topic: str = Field(pattern=TOPIC_PATTERN)
    task: dict[str, Any] = Field(default_factory=dict, description="the run's task, from the event's data")
    filter: dict[str, Any] = Field(default_factory=dict, description="only events whose data match")


class TriggersSpec(Strict):
    schedule: list[ScheduleTrigger] = Field(default_factory=list)
    event: list[EventTrigger] = Field(default_factory=list)
    # An event for a subject whose run of this agent is still open ("double texting").
    on_busy: Literal["queue", "signal", "skip", "parallel"] = "signal"
