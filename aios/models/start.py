"""The one request every way of starting a run goes through, and what came of it.

`aios run`, a Schedule's firing, an event and a delegating run all hand a `StartRequest` to
the same admission (aios/governance/admission.py): daily budget, kill switch, canary split
and the input's size are checked alike, whatever started the run.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any, Literal

from pydantic import Field

from aios.models.base import Payload
from aios.models.manifest import AgentManifest
from aios.models.run import DEFAULT_MAX_HISTORY_EVENTS, Cause, Delegation

Outcome = Literal["started", "skipped", "duplicate"]


class StartRequest(Payload):
    agent: str
    task: dict[str, Any] = Field(default_factory=dict)
    cause: Cause = Field(default_factory=Cause)
    run_id: str | None = Field(
        default=None,
        description="the run's id; a trigger derives it from what fired, so a redelivery finds it taken",
    )
    manifest: AgentManifest | None = Field(default=None, description="None: the agent's manifest file")
    task_queue: str | None = None
    max_history_events: int = Field(default=DEFAULT_MAX_HISTORY_EVENTS, ge=50)
    reconcile_within: timedelta | None = None
    after: str | None = Field(
        default=None, description="DispatchRun starts the run once this run has ended (on_busy: queue)"
    )
    await_end: bool = Field(
        default=False,
        description="DispatchRun waits for the started run to end: a Schedule's overlap policy then "
        "sees the run as the firing still going",
    )
    delegation: Delegation | None = Field(default=None, description="a child run's place in its chain")
    shadow_only: bool = Field(
        default=False,
        description="run exactly `manifest`, in shadow mode and outside any rollout: a behaviour "
        "check (aios/checks) sees what one version proposes, and nothing is executed",
    )


class StartOutcome(Payload):
    """A started run, or why none started; `duplicate` when the run id was already taken."""

    outcome: Outcome
    run_id: str
    agent: str
    cause: Cause
    manifest_version: str = ""
    mode: Literal["live", "shadow"] = "live"
    shadow_run_id: str | None = None
    reason: str = Field(default="", description="why nothing started")

    @property
    def started(self) -> bool:
        return self.outcome == "started"
