"""Comparing what a run proposed with what its check expects. Pure: a RunState in, rows out."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from aios.models.checks import Check, Expect, ParamBound
from aios.models.manifest import Grade
from aios.models.run import Proposal, RunState, number_in

NOTHING = "(nothing proposed)"


@dataclass(frozen=True)
class Row:
    """One expectation of one check, what the run showed, and whether they agree."""

    check: str
    expectation: str
    observed: str
    passed: bool


def judge(check: Check, state: RunState) -> list[Row]:
    """A row per expectation of `check`, in the order the checks file gives them."""
    expect, proposals = check.expect, state.proposals
    found: list[tuple[str, str, bool]] = []
    if expect.action is not None:
        first = proposals[0].proposed.action if proposals else NOTHING
        found.append((f"first action = {expect.action}", first, first == expect.action))
    proposed = [proposal.proposed.action for proposal in proposals]
    for action in expect.proposes:
        found.append((f"proposes {action}", _listed(proposed), action in proposed))
    target = _target(expect, proposals)
    found += _param_rows(expect, target)
    if expect.approval is not None:
        observed = _approval(target) if target is not None else _missing(expect)
        found.append((f"approval {expect.approval}", observed, observed == expect.approval))
    for action in expect.never:
        found.append((f"never {action}", _listed(proposed), action not in proposed))
    text = reply_text(state).casefold()
    for words in expect.reply_mentions:
        found.append((f"reply mentions {words!r}", _shorten(reply_text(state)), words.casefold() in text))
    if expect.outcome is not None:
        status = state.status.value
        found.append((f"outcome {expect.outcome}", status, status == expect.outcome))
    return [Row(check.name, expectation, observed, passed) for expectation, observed, passed in found]


def reply_text(state: RunState) -> str:
    """What the agent would write: its proposals' text params, then its last words."""
    texts = [
        value
        for proposal in state.proposals
        for value in proposal.proposed.params.values()
        if isinstance(value, str)
    ]
    return " | ".join([*texts, state.outcome] if state.outcome else texts)


def _target(expect: Expect, proposals: list[Proposal]) -> Proposal | None:
    """The proposal `params` and `approval` speak of: the first of `action`, else the first."""
    if expect.action is None:
        return proposals[0] if proposals else None
    return next((proposal for proposal in proposals if proposal.proposed.action == expect.action), None)


def _missing(expect: Expect) -> str:
    return f"no {expect.action} proposed" if expect.action else NOTHING


def _approval(proposal: Proposal) -> str:
    if proposal.grade is Grade.NEEDS_APPROVAL:
        return "required"
    if proposal.grade is Grade.FORBIDDEN:
        return f"forbidden ({proposal.grade_reason})"
    return "not_required"


def _param_rows(expect: Expect, target: Proposal | None) -> list[tuple[str, str, bool]]:
    rows = []
    for name, bound in expect.params.items():
        label = f"params.{name} {describe(bound)}"
        if target is None:
            rows.append((label, _missing(expect), False))
            continue
        params = target.proposed.params
        present = name in params
        value = params.get(name)
        rows.append((label, repr(value) if present else "(absent)", within(bound, present, value)))
    return rows


def within(bound: ParamBound, present: bool, value: Any) -> bool:
    """Does a param (present or not, and its value) keep every limit of `bound`?"""
    if bound.present is not None and bound.present != present:
        return False
    if not present:
        return bound.present is False
    number = number_in(value)
    if bound.max is not None and (number is None or number > bound.max):
        return False
    if bound.min is not None and (number is None or number < bound.min):
        return False
    if bound.equals is not None and not _same(value, bound.equals):
        return False
    return bound.one_of is None or any(_same(value, option) for option in bound.one_of)


def describe(bound: ParamBound) -> str:
    parts = []
    if bound.present is not None:
        parts.append("present" if bound.present else "absent")
    if bound.min is not None:
        parts.append(f">= {bound.min:g}")
    if bound.max is not None:
        parts.append(f"<= {bound.max:g}")
    if bound.equals is not None:
        parts.append(f"= {bound.equals!r}")
    if bound.one_of is not None:
        parts.append(f"in {bound.one_of!r}")
    return " and ".join(parts)


def _same(value: Any, expected: Any) -> bool:
    """Equal, with numbers compared as numbers: a model writes 50 as "50" or 50.0 too."""
    if isinstance(expected, bool) or isinstance(value, bool):
        return value is expected
    if isinstance(expected, int | float):
        number = number_in(value)
        return number is not None and number == expected
    return bool(value == expected)


def _listed(actions: list[str]) -> str:
    return ", ".join(actions) or NOTHING


def _shorten(text: str, limit: int = 80) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"
