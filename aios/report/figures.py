"""The report's arithmetic: counts from the ledger plus a manifest's `value:` make a row.

Pure functions, so every figure can be checked without a database.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from aios.models.manifest import ValueSpec
from aios.models.report import AgentValue

TOTAL = "total"


@dataclass(frozen=True)
class Tally:
    """What the ledger says about one agent's live runs in the window."""

    agent: str
    runs: int = 0
    completed: int = 0
    compensated: int = 0
    tokens: int = 0
    cost: float = 0.0
    cache_tokens_saved: int = 0
    cache_cost_saved: float = 0.0
    executed: Mapping[str, int] = field(default_factory=dict)  # executed steps of completed runs, per action
    approvals: int = 0
    resumes: int = 0
    resolutions: int = 0

    @property
    def touches(self) -> int:
        return self.approvals + self.resumes + self.resolutions


def minutes_saved(tally: Tally, value: ValueSpec | None) -> float:
    """Completed runs x minutes per run, plus each executed step's minutes (completed runs only:
    a compensated run undid its work, so it saved nobody anything)."""
    if value is None:
        return 0.0
    per_action = sum(
        tally.executed.get(action, 0) * minutes for action, minutes in value.minutes_saved_per_action.items()
    )
    return tally.completed * value.minutes_saved_per_run + per_action


def agent_value(tally: Tally, value: ValueSpec | None, *, minutes_per_touch: float) -> AgentValue:
    gross = minutes_saved(tally, value)
    return _row(tally, gross=gross, minutes_per_touch=minutes_per_touch, declared=value is not None)


def total(rows: Iterable[AgentValue], *, minutes_per_touch: float) -> AgentValue:
    """The sum of the rows; its value is declared only if every row's is."""
    listed = list(rows)
    tally = Tally(
        agent=TOTAL,
        runs=sum(row.runs for row in listed),
        completed=sum(row.completed for row in listed),
        compensated=sum(row.compensated for row in listed),
        tokens=sum(row.tokens for row in listed),
        cost=sum(row.cost for row in listed),
        cache_tokens_saved=sum(row.cache_tokens_saved for row in listed),
        cache_cost_saved=sum(row.cache_cost_saved for row in listed),
        approvals=sum(row.approvals for row in listed),
        resumes=sum(row.resumes for row in listed),
        resolutions=sum(row.resolutions for row in listed),
    )
    gross = sum(row.minutes_saved_gross for row in listed)
    declared = all(row.value_declared for row in listed)
    return _row(tally, gross=gross, minutes_per_touch=minutes_per_touch, declared=declared)


def _row(tally: Tally, *, gross: float, minutes_per_touch: float, declared: bool) -> AgentValue:
    touched = tally.touches * minutes_per_touch
    return AgentValue(
        agent=tally.agent,
        runs=tally.runs,
        completed=tally.completed,
        compensated=tally.compensated,
        other=tally.runs - tally.completed - tally.compensated,
        approvals=tally.approvals,
        resumes=tally.resumes,
        resolutions=tally.resolutions,
        touches=tally.touches,
        touches_per_run=tally.touches / tally.runs if tally.runs else 0.0,
        minutes_saved_gross=gross,
        minutes_touched=touched,
        minutes_saved_net=gross - touched,
        tokens=tally.tokens,
        cost=tally.cost,
        cache_tokens_saved=tally.cache_tokens_saved,
        cache_cost_saved=tally.cache_cost_saved,
        value_declared=declared,
    )
