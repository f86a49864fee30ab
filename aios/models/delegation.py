"""What a delegating run asks of admission for its child, and what admission answers."""

from __future__ import annotations

from typing import Any

from pydantic import Field

from aios.models.base import Payload
from aios.models.run import Delegation, RunInput


class ChildRequest(Payload):
    """A parent run's `connector: agent` step asking to start its child run."""

    parent_run_id: str
    parent_agent: str
    step: int = Field(ge=1)
    action: str
    agent: str = Field(description="the child's agent, whose manifest is found by name")
    task: dict[str, Any] = Field(default_factory=dict)
    delegation: Delegation = Field(description="the child's depth and the budget its parent had left")
    children: int = Field(ge=0, description="child runs the parent has started before this one")
    task_queue: str

    @property
    def child_run_id(self) -> str:
        """Derived from the parent and its step: a retried admission finds the same child."""
        return child_run_id(self.parent_run_id, self.step, self.agent)


class ChildAdmitted(Payload):
    """The child's input, admitted (budget, kill switch, canary, size); not started yet."""

    run_id: str
    input: RunInput
    summary: str = Field(description="the Web UI's one-line summary of the child run")
    shadow_run_id: str | None = Field(default=None, description="its shadow, started by admission")


def child_run_id(parent_run_id: str, step: int, agent: str) -> str:
    return f"{parent_run_id}.step-{step}.{agent}"
