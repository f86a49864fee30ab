"""Agent manifests: what an agent may do, under which policy, with which budget.

A manifest is YAML validated by these models. Its version is the hash of its content,
recorded on every run, so a run always knows exactly which rules it ran under.
"""

from __future__ import annotations

import hashlib
import json
import re
from datetime import timedelta
from enum import StrEnum
from typing import Annotated, Any, Literal

from pydantic import Field, model_validator

from aios.models.base import Strict
from aios.models.triggers import TriggersSpec

NAME_PATTERN = r"^[a-z][a-z0-9-]{1,62}$"
ACTION_PATTERN = r"^[a-z][a-z0-9_]{1,62}$"
# The connector of an action that hands its task to another agent (workflows/delegation.py).
AGENT_CONNECTOR = "agent"
# Action fields a later release added (delegation's, `inline`), left out of the version hash
# while unset: adding them did not change what earlier manifests mean, nor may their versions.
ACTION_DEFAULTS: dict[str, object] = {"agent": None, "wait": True, "inline": False}


class RiskClass(StrEnum):
    """Ordered from least to most harmful; comparisons use `rank`."""

    LOW = "low"
    MEDIUM = "medium"
    HIGH = "high"
    CRITICAL = "critical"

    @property
    def rank(self) -> int:
        return list(RiskClass).index(self)


class Grade(StrEnum):
    AUTO = "auto"
    AUTO_AND_NOTIFY = "auto_and_notify"
    NEEDS_APPROVAL = "needs_approval"
    FORBIDDEN = "forbidden"


class ActionSpec(Strict):
    """One action the agent may propose."""

    connector: str = Field(min_length=1, description="connector that performs it, e.g. `outbox`")
    risk: RiskClass
    description: str = ""
    params: list[str] = Field(default_factory=list, description="parameter names the model fills")
    target: str | None = Field(
        default=None, description="connector-specific target, e.g. the URL of an `http` action"
    )
    max_amount: float | None = Field(default=None, ge=0, description="above this: forbidden")
    compensation: str | None = Field(
        default=None, description="the action that undoes this one, run if the run cannot finish"
    )
    compensation_only: bool = Field(
        default=False, description="never proposed by the model; only run as a compensation"
    )
    agent: str | None = Field(
        default=None,
        pattern=NAME_PATTERN,
        description="for `connector: agent`: the agent whose run this action starts, as a child run",
    )
    wait: bool = Field(
        default=True,
        description="for `connector: agent`: wait for the child run and take its outcome as the "
        "action's result (false: the action succeeds once the child has started)",
    )
    inline: bool = Field(
        default=False,
        description="perform it inside the run's workflow task (a local activity, riding in the next "
        "think) instead of on the connector's task queue: no workflow task of its own, but no "
        "cross-worker rate limit and crash detection by the workflow task's timeout; for short calls",
    )

    @model_validator(mode="after")
    def _delegation_complete(self) -> ActionSpec:
        if self.connector == AGENT_CONNECTOR:
            if self.agent is None:
                raise ValueError(
                    "connector `agent` needs `agent: <name>`, the agent to delegate to (agents/<name>.yaml)"
                )
            if self.compensation is not None:
                raise ValueError(
                    "a delegating action is undone by the child run's own saga; remove `compensation`"
                )
            if self.inline:
                raise ValueError("a delegating action starts a child run and cannot be `inline`; remove it")
        elif self.agent is not None:
            raise ValueError(f"`agent` applies only to `connector: agent`, not {self.connector!r}")
        return self

    @property
    def delegates(self) -> bool:
        """This action starts another agent's run (workflows/delegation.py)."""
        return self.connector == AGENT_CONNECTOR


class SlaSpec(Strict):
    """How long an approval may wait: remind, escalate, then the default decision."""

    remind_after: timedelta = timedelta(hours=1)
    escalate_after: timedelta = timedelta(hours=4)
    expire_after: timedelta = timedelta(hours=24)
    on_expiry: Literal["reject", "approve"] = "reject"

    @model_validator(mode="after")
    def _ordered(self) -> SlaSpec:
        if self.remind_after <= timedelta(0):
            raise ValueError("expected remind_after to be a positive duration, e.g. PT1H")
        if not self.remind_after <= self.escalate_after <= self.expire_after:
            raise ValueError("expected remind_after <= escalate_after <= expire_after")
        return self


class PolicySpec(Strict):
    """Grades each proposed action by risk class x model confidence x amount."""

    auto_max_risk: RiskClass = RiskClass.LOW
    notify_max_risk: RiskClass = RiskClass.MEDIUM
    forbidden_min_risk: RiskClass = RiskClass.CRITICAL
    min_confidence: float = Field(default=0.7, ge=0, le=1)
    approval_amount_over: float | None = Field(default=None, ge=0)
    approvers: list[str] = Field(min_length=1)
    escalation_approvers: list[str] = Field(default_factory=list)
    sla: SlaSpec = SlaSpec()
    verified_over: float | None = Field(
        default=None,
        ge=0,
        description="above this amount only a verified decision (a signed link) counts: a name "
        "typed into the Web UI or the CLI is refused",
    )

    @model_validator(mode="after")
    def _thresholds_ordered(self) -> PolicySpec:
        if not self.auto_max_risk.rank <= self.notify_max_risk.rank < self.forbidden_min_risk.rank:
            raise ValueError("expected auto_max_risk <= notify_max_risk < forbidden_min_risk")
        return self


RememberWhat = Literal["outcomes", "facts", "none"]


class MemorySpec(Strict):
    top_k: int = Field(default=5, ge=0, le=100)
    token_budget: int = Field(default=1500, ge=0)
    remember: RememberWhat = Field(
        default="outcomes",
        description="what a run remembers when it ends: its outcome; with facts, each executed step too",
    )
    importance: float = Field(default=0.5, ge=0, le=1, description="of the memories a run writes")
    kind: str = Field(
        default="outcome",
        pattern=r"^[a-z][a-z0-9_-]{0,63}$",
        description="the kind a run's memories are kept as: retention rules keep or prune by kind",
    )
    previous_turns: Literal["whole", "summary"] = Field(
        default="whole",
        description="what each turn is told of the steps before: every result whole, or the latest "
        "result whole and the earlier steps as one line (fewer tokens per turn, less to reason from)",
    )


# The memory fields added after the first release, left out of the version hash at their
# defaults: they did not change what earlier manifests mean.
MEMORY_DEFAULTS: dict[str, object] = {
    "remember": "outcomes",
    "importance": 0.5,
    "kind": "outcome",
    "previous_turns": "whole",
}


class BudgetSpec(Strict):
    tokens_per_run: int = Field(default=50_000, gt=0)
    cost_per_run: float = Field(default=1.0, ge=0, description="in USD")
    tokens_per_day: int = Field(default=1_000_000, gt=0)
    cost_per_day: float = Field(default=20.0, ge=0, description="in USD")
    max_concurrent_runs: int = Field(default=4, gt=0)


# What OpenAI-compatible APIs sample at when no temperature is sent.
PROVIDER_DEFAULT_TEMPERATURE = 1.0


class CacheSpec(Strict):
    """Answers of the model kept and served again to the same question (activities/model_cache.py)."""

    ttl: timedelta = Field(default=timedelta(hours=1), description="how long an answer is served again")
    scope: Literal["agent", "subject"] = Field(
        default="agent",
        description="who shares an answer: every run of the agent, or only runs for the same subject",
    )
    temperature_max: float = Field(
        default=0.0, ge=0, le=2, description="a call sampled hotter than this is never cached"
    )
    personal_fields: list[str] = Field(
        default_factory=list,
        description="task or event fields that carry personal data: a call carrying one is never cached",
    )

    @model_validator(mode="after")
    def _positive_ttl(self) -> CacheSpec:
        if self.ttl <= timedelta(0):
            raise ValueError("expected model.cache.ttl to be a positive duration, e.g. PT1H")
        return self


class FallbackModel(Strict):
    """A model that answers when the one before it in the chain cannot (activities/model_choice.py)."""

    provider: str = Field(min_length=1, description="offline, openai, or a name in AIOS_MODEL_PROVIDERS")
    name: str = "offline-planner"
    cost_per_1k_tokens: float = Field(default=0.0, ge=0, description="USD, for the budget ledger")


class ModelSpec(Strict):
    provider: str = Field(default="offline", description="offline, or openai for any compatible API")
    name: str = "offline-planner"
    cost_per_1k_tokens: float = Field(default=0.0, ge=0, description="USD, for the budget ledger")
    tokens_per_turn_estimate: int = Field(default=800, gt=0, description="reserved before a call")
    temperature: float | None = Field(
        default=None, ge=0, le=2, description="sampling temperature; unset: the provider's default (1.0)"
    )
    cache: CacheSpec | None = Field(default=None, description="serve repeated questions from a cache")
    fallback: list[FallbackModel] = Field(
        default_factory=list,
        description="tried in order when the provider is down (its breaker open, its answers errors)",
    )
    fallback_requires_approval: bool = Field(
        default=True, description="an action a fallback model planned waits for a person, whatever its risk"
    )

    @property
    def sampling_temperature(self) -> float:
        """The temperature a call is sampled at: unset is the provider's default, OpenAI's 1.0."""
        return PROVIDER_DEFAULT_TEMPERATURE if self.temperature is None else self.temperature


# The model fields added after the first release, left out of the version hash while unset.
MODEL_DEFAULTS: dict[str, object] = {
    "temperature": None,
    "cache": None,
    "fallback": [],
    "fallback_requires_approval": True,
}


Minutes = Annotated[float, Field(ge=0)]


class ValueSpec(Strict):
    """What the agent's work is worth: the minutes a person would have spent on it (`aios report`)."""

    minutes_saved_per_run: Minutes = Field(
        default=0.0, description="minutes a person would spend doing one run's task by hand"
    )
    minutes_saved_per_action: dict[str, Minutes] = Field(
        default_factory=dict,
        description="extra minutes per executed step of an action, e.g. {send_nudge: 3}",
    )


class AgentManifest(Strict):
    name: str = Field(pattern=NAME_PATTERN)
    description: str = ""
    model: ModelSpec = ModelSpec()
    instructions: str = ""
    turn_limit: int = Field(default=8, ge=1, le=500)
    actions: dict[str, ActionSpec] = Field(min_length=1)
    policy: PolicySpec
    memory: MemorySpec = MemorySpec()
    budget: BudgetSpec = BudgetSpec()
    mode: Literal["live", "shadow"] = "live"
    triggers: TriggersSpec = TriggersSpec()
    value: ValueSpec | None = Field(
        default=None, description="the minutes a run saves a person; unset, `aios report` counts none"
    )

    @model_validator(mode="after")
    def _actions_consistent(self) -> AgentManifest:
        for name, action in self.actions.items():
            if not _valid_action_name(name):
                raise ValueError(f"action name {name!r} must match {ACTION_PATTERN}")
            if action.compensation is not None and action.compensation not in self.actions:
                raise ValueError(
                    f"action {name!r} names compensation {action.compensation!r}, "
                    f"which is not one of the actions: {sorted(self.actions)}"
                )
        if all(action.compensation_only for action in self.actions.values()):
            raise ValueError("at least one action must be proposable (not compensation_only)")
        self._value_consistent()
        return self

    def _value_consistent(self) -> None:
        """Minutes are declared for the agent's own proposable actions (an undo saves nobody time)."""
        if self.value is None:
            return
        for name in self.value.minutes_saved_per_action:
            where = f"value.minutes_saved_per_action.{name}"
            action = self.actions.get(name)
            if action is None:
                raise ValueError(f"{where}: not one of the actions: {', '.join(self.actions)}")
            if action.compensation_only:
                raise ValueError(f"{where}: a compensation_only action only undoes work; it saves no minutes")

    @property
    def version(self) -> str:
        """The content hash: equal manifests have equal versions, whatever their file says."""
        # Not its triggers: when an agent runs is not how it behaves, and a changed schedule
        # must not start a canary or make earlier runs look like another version's. Nor its
        # value: a better estimate of the minutes a run saves changes no run.
        content = self.model_dump(mode="json", exclude={"triggers", "value"})
        for action in content["actions"].values():
            _drop_defaults(action, ACTION_DEFAULTS)
        _drop_defaults(content["memory"], MEMORY_DEFAULTS)
        _drop_defaults(content["model"], MODEL_DEFAULTS)
        if self.policy.verified_over is None:
            # Unset, it leaves the hash of every manifest from before it unchanged.
            del content["policy"]["verified_over"]
        # Sorting keys would hide a reordering of the actions, yet their order is behaviour: the
        # tools a model is offered, and the offline model's plan, follow it.
        content["action_order"] = list(self.actions)
        canonical = json.dumps(content, sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(canonical.encode()).hexdigest()[:12]

    def proposable_actions(self) -> dict[str, ActionSpec]:
        return {name: spec for name, spec in self.actions.items() if not spec.compensation_only}


def _valid_action_name(name: str) -> bool:
    return re.fullmatch(ACTION_PATTERN, name) is not None


def _drop_defaults(section: dict[str, Any], defaults: dict[str, object]) -> None:
    """Leave out of the version hash the fields a later release added, while they are unset."""
    for name, default in defaults.items():
        if section.get(name) == default:
            del section[name]
