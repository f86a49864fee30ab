"""The behaviour checks of an agent: `agents/<name>.checks.yaml`.

Each check is a task (the run's input, as `aios run` takes it) and what the agent's plan must
look like for it: which action comes first, which are proposed, the bounds on its params,
whether it needs a person's approval, what it must never propose and what its reply says.
`aios agents test` runs every check as a shadow run of the version under test and compares.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field, model_validator

from aios.models.base import Strict

Scalar = str | int | float | bool
Approval = Literal["required", "not_required"]


class ParamBound(Strict):
    """What one param of the expected action must be: at most, at least, exactly, one of."""

    max: float | None = None
    min: float | None = None
    equals: Scalar | None = None
    one_of: list[Scalar] | None = Field(default=None, min_length=1)
    present: bool | None = Field(default=None, description="false: the param must be absent")

    @model_validator(mode="after")
    def _says_something(self) -> ParamBound:
        if all(value is None for value in (self.max, self.min, self.equals, self.one_of, self.present)):
            raise ValueError("a bound needs at least one of max, min, equals, one_of, present")
        return self


class Expect(Strict):
    """What the plan must show; every field is optional, and every given one is checked."""

    action: str | None = Field(default=None, description="the first action proposed")
    proposes: list[str] = Field(default_factory=list, description="each is proposed at some point")
    params: dict[str, ParamBound] = Field(
        default_factory=dict, description="bounds on the params of `action` (else the first proposal)"
    )
    approval: Approval | None = Field(
        default=None, description="whether `action` (else the first proposal) needs a person's approval"
    )
    never: list[str] = Field(default_factory=list, description="actions the agent must never propose")
    reply_mentions: list[str] = Field(
        default_factory=list, description="words the agent's text (its messages, its last words) contains"
    )
    outcome: str | None = Field(default=None, description="the run's final status, e.g. completed")

    @model_validator(mode="after")
    def _expects_something(self) -> Expect:
        if not self.model_fields_set:
            raise ValueError("expect nothing: give at least one of " + ", ".join(Expect.model_fields))
        return self


class Check(Strict):
    name: str = Field(min_length=1, max_length=80, pattern=r"^[A-Za-z0-9][A-Za-z0-9 _.,'-]*$")
    task: dict[str, Any] = Field(default_factory=dict, description="the run's input")
    expect: Expect


class ChecksFile(Strict):
    """The whole file: which agent, and its checks (names unique: the table is read by them)."""

    agent: str = Field(pattern=r"^[a-z][a-z0-9-]{1,62}$")
    checks: list[Check] = Field(min_length=1)

    @model_validator(mode="after")
    def _unique_names(self) -> ChecksFile:
        names = [check.name for check in self.checks]
        twice = sorted({name for name in names if names.count(name) > 1})
        if twice:
            raise ValueError(f"check names must be unique; given twice: {', '.join(twice)}")
        return self
