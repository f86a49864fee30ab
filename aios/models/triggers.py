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
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import Field, field_validator, model_validator

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

    @field_validator("cron")
    @classmethod
    def _cron_shape(cls, value: str | None) -> str | None:
        # Temporal checks the fields themselves when the Schedule is applied; the count is what a
        # manifest author gets wrong most (a seconds field, or a missing day of week).
        if value is not None and not value.startswith("@") and len(value.split()) not in (5, 6, 7):
            raise ValueError(
                f"{value!r} is not a cron expression: five fields (minute hour day-of-month month "
                f'day-of-week, e.g. "0 9 * * 1-5"), or @daily, @hourly, @every 10m'
            )
        return value

    @field_validator("timezone")
    @classmethod
    def _known_zone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"{value!r} is not an IANA time zone (e.g. UTC, Europe/Paris)") from None
        return value

    @model_validator(mode="after")
    def _cron_or_every(self) -> ScheduleTrigger:
        if (self.cron is None) == (self.every is None):
            raise ValueError(f"schedule {self.name!r} needs exactly one of `cron` and `every`")
        return self


class EventTrigger(Strict):
    """A topic the agent subscribes to, and how an event's data becomes the run's task.

    In `task`, a string `$.a.b` is the event's `data["a"]["b"]` and `$` the whole data; any other
    value is taken as written. `filter` maps a data path (`a.b`) to the value it must equal.
    """

    topic: str = Field(pattern=TOPIC_PATTERN)
    task: dict[str, Any] = Field(
        default_factory=lambda: {"event": "$"}, description="the run's task, from the event's data"
    )
    filter: dict[str, Any] = Field(default_factory=dict, description="only events whose data match")

    @field_validator("task")
    @classmethod
    def _paths_well_formed(cls, value: dict[str, Any]) -> dict[str, Any]:
        for key, template in value.items():
            if isinstance(template, str) and template.startswith("$") and not _is_path(template):
                raise ValueError(f"task.{key}: {template!r} is not a data path: write $ or $.field.subfield")
        return value

    def task_for(self, data: dict[str, Any]) -> dict[str, Any]:
        """The run's task for an event with `data` (a missing path gives None)."""
        return {key: _pick(data, template) for key, template in self.task.items()}

    def matches(self, data: dict[str, Any]) -> bool:
        return all(_pick(data, f"$.{path}") == expected for path, expected in self.filter.items())


def _is_path(template: str) -> bool:
    return template == "$" or (template.startswith("$.") and all(template[2:].split(".")))


def _pick(data: dict[str, Any], template: Any) -> Any:
    if not (isinstance(template, str) and _is_path(template)):
        return template
    value: Any = data
    for part in template[2:].split(".") if template != "$" else []:
        value = value.get(part) if isinstance(value, dict) else None
    return value


class TriggersSpec(Strict):
    schedule: list[ScheduleTrigger] = Field(default_factory=list)
    event: list[EventTrigger] = Field(default_factory=list)
    # An event for a subject whose run of this agent is still open ("double texting").
    on_busy: Literal["queue", "signal", "skip", "parallel"] = "signal"

    @field_validator("schedule")
    @classmethod
    def _unique_names(cls, value: list[ScheduleTrigger]) -> list[ScheduleTrigger]:
        _once_each([trigger.name for trigger in value], "schedule names must be unique within an agent")
        return value

    @field_validator("event")
    @classmethod
    def _one_subscription_per_topic(cls, value: list[EventTrigger]) -> list[EventTrigger]:
        _once_each([trigger.topic for trigger in value], "an agent subscribes to a topic once")
        return value


def _once_each(keys: list[str], rule: str) -> None:
    if len(keys) != len(set(keys)):
        raise ValueError(f"{rule}: {keys}")
