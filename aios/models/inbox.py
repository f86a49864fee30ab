"""The operator's inbox: every item that needs a person, with what settles it."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Any, Literal

from pydantic import Field

from aios.models.base import Payload


class InboxKind(StrEnum):
    APPROVAL = "approval"  # a step waits for a verdict
    BUDGET_PAUSE = "budget_pause"  # a run hit a budget cap
    NEEDS_OPERATOR = "needs_operator"  # a run waits for an effect in doubt, or its undo failed
    UNKNOWN_EFFECT = "unknown_effect"  # the ledger cannot say whether an effect happened
    OPEN_BREAKER = "open_breaker"  # a connector's circuit breaker is open
    STUCK_RUN = "stuck_run"  # a run's workflow task keeps failing
    SKIPPED_SCHEDULE_FIRE = "skipped_schedule_fire"  # admission refused a schedule's fire
    DRIFT_ALARM = "drift_alarm"  # an agent version's behaviour moved from its baseline (aios/drift/)


class WebUiAction(Payload):
    """What to send from the Web UI's run page instead of the command."""

    kind: Literal["signal", "update"]
    name: str
    json_input: dict[str, Any] = Field(description="the JSON typed into the form")


class InboxItem(Payload):
    kind: InboxKind
    key: str = Field(description="stable per item: the same item keeps its key until settled")
    since: datetime
    title: str
    agent: str | None = None
    run_id: str | None = None
    context: dict[str, Any] = Field(default_factory=dict, description="what a person needs to decide")
    suggested: str = Field(description="what to do, in a sentence")
    command: str = Field(description="the one command that settles it")
    alternatives: list[str] = Field(default_factory=list, description="other commands that settle it")
    web_ui: WebUiAction | None = None
