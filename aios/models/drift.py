"""Drift: how an agent version's last day compares with its baseline (aios/drift/)."""

from __future__ import annotations

from datetime import datetime, timedelta

from pydantic import Field

from aios.models.base import Payload

DRIFT_WORKFLOW = "DriftCheck"  # workflows/drift.py


class DriftWindows(Payload):
    """What is compared: the last `window` against the `baseline` period just before it."""

    window: timedelta = Field(default=timedelta(days=1), gt=timedelta(0))
    baseline: timedelta = Field(default=timedelta(days=7), gt=timedelta(0))
    min_runs: int = Field(default=20, ge=2, description="runs per side below which nothing is judged")


class MetricRow(Payload):
    """One metric's comparison: each side's value, the statistic, whether it moved."""

    metric: str
    baseline: float | dict[str, float]
    window: float | dict[str, float]
    statistic: str
    moved: bool


class Comparison(Payload):
    """One agent version's window against what it is compared with (its baseline, or the live
    version for a canary)."""

    agent: str
    version: str
    against: str = Field(description="`baseline`, or `live <version>` for a canary")
    window_from: datetime
    window_to: datetime
    baseline_runs: int
    window_runs: int
    enough: bool = Field(description="both sides have at least `min_runs` runs; otherwise nothing is judged")
    metrics: list[MetricRow] = Field(default_factory=list)

    @property
    def moved(self) -> list[MetricRow]:
        return [row for row in self.metrics if row.moved] if self.enough else []

    @property
    def kind(self) -> str:
        return "canary" if self.against.startswith("live") else "baseline"


class DriftCheckRequest(Payload):
    """The DriftCheck workflow's input (the `aios-drift` Schedule's action)."""

    windows: DriftWindows = Field(default_factory=DriftWindows)


class DriftCheckInput(Payload):
    """The `drift.check` activity's input: `as_of` is the workflow's clock, so a retry judges
    the same window and writes the same alarm keys."""

    windows: DriftWindows
    as_of: datetime


class DriftReport(Payload):
    comparisons: list[Comparison] = Field(default_factory=list)
    alarms: list[str] = Field(default_factory=list, description="event keys of the alarms raised")
    new_alarms: int = Field(default=0, description="alarms recorded by this check (not earlier the same day)")
