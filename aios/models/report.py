"""What automation is worth, per agent: `aios report` and `AiosClient.report`."""

from __future__ import annotations

from datetime import datetime

from pydantic import Field

from aios.models.base import Payload


class AgentValue(Payload):
    """One agent's live runs started in the report's window, and what they were worth.

    Minutes saved count completed runs only (a compensated run undid its work); every touch
    costs `minutes_per_touch`, whatever became of its run.
    """

    agent: str = Field(description="the agent's name, or `total` for the sum of the rows")
    runs: int = Field(ge=0, description="live runs started in the window (shadow runs are not counted)")
    completed: int = Field(ge=0)
    compensated: int = Field(ge=0)
    other: int = Field(ge=0, description="still going, waiting, paused, or ended needing the operator")
    approvals: int = Field(ge=0, description="approvals and rejections by a person (an SLA default is not)")
    resumes: int = Field(ge=0, description="resumes after a pause, day-cap overrides included")
    resolutions: int = Field(ge=0, description="effects in doubt settled with `aios effects resolve`")
    touches: int = Field(ge=0, description="approvals + resumes + resolutions")
    touches_per_run: float = Field(ge=0)
    minutes_saved_gross: float = Field(ge=0, description="what the completed runs saved, before touches")
    minutes_touched: float = Field(ge=0, description="touches x minutes per touch")
    minutes_saved_net: float = Field(
        description="gross minus touched: negative when runs cost more than they save"
    )
    tokens: int = Field(
        ge=0, description="tokens the runs spent themselves (children count as their own agent)"
    )
    cost: float = Field(ge=0, description="USD, as the budget ledger settled it")
    cache_tokens_saved: int = Field(default=0, ge=0, description="tokens the model-response cache saved")
    cache_cost_saved: float = Field(default=0.0, ge=0, description="USD the model-response cache saved")
    value_declared: bool = Field(description="the agent's manifest has a `value:` section (else it saves 0)")


class ValueReport(Payload):
    since: datetime = Field(description="runs started from this instant on are counted")
    minutes_per_touch: float = Field(ge=0)
    agents: list[AgentValue] = Field(default_factory=list, description="one row per agent, by name")
    total: AgentValue
