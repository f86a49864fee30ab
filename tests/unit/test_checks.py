"""Behaviour checks: the file's one-line errors, and comparing a run's plan with a check."""

from __future__ import annotations

from pathlib import Path

import pytest

from aios.checks.expect import judge
from aios.checks.files import load_checks
from aios.errors import ChecksInvalid
from aios.models.checks import Check
from aios.models.manifest import Grade
from aios.models.run import Proposal, ProposedAction, RunState, RunStatus

AGENTS = Path(__file__).parents[2] / "agents"


def state(*proposals: tuple[str, dict[str, object], Grade], outcome: str = "") -> RunState:
    return RunState(
        run_id="r",
        agent="a",
        manifest_version="v",
        mode="shadow",
        status=RunStatus.COMPLETED,
        outcome=outcome,
        proposals=[
            Proposal(
                step=index,
                turn=index,
                proposed=ProposedAction(action=action, params=params, confidence=0.9),
                grade=grade,
                grade_reason="",
            )
            for index, (action, params, grade) in enumerate(proposals, start=1)
        ],
    )


def check(**expect: object) -> Check:
    return Check.model_validate({"name": "c", "task": {}, "expect": expect})


def test_every_expectation_is_a_row_that_passes_or_fails_on_what_the_run_proposed() -> None:
    run = state(
        ("issue_refund", {"amount": 18000, "currency": "usd"}, Grade.NEEDS_APPROVAL),
        ("send_reply", {"message": "We refunded order o-1."}, Grade.AUTO_AND_NOTIFY),
    )
    rows = judge(
        check(
            action="issue_refund",
            params={"amount": {"max": 10000}, "currency": {"one_of": ["usd"]}},
            approval="not_required",
            never=["reverse_refund"],
            reply_mentions=["refunded"],
            outcome="completed",
        ),
        run,
    )
    verdicts = {row.expectation: row.passed for row in rows}
    assert verdicts["first action = issue_refund"]
    assert not verdicts["approval not_required"]
    assert verdicts["never reverse_refund"] and verdicts["reply mentions 'refunded'"]
    assert verdicts["outcome completed"]
    assert [row.passed for row in rows if "amount" in row.expectation] == [False]


def test_a_run_that_proposed_nothing_fails_what_it_was_expected_to_do() -> None:
    [row] = judge(check(action="issue_refund"), state())
    assert (row.observed, row.passed) == ("(nothing proposed)", False)


def test_the_shipped_checks_files_load() -> None:
    for path in sorted(AGENTS.glob("*.checks.yaml")):
        assert load_checks(path).checks


def test_a_malformed_file_names_the_field(tmp_path: Path) -> None:
    path = tmp_path / "x.checks.yaml"
    path.write_text("agent: x-agent\nchecks:\n  - name: a\n    expect: {approval: maybe}\n")
    with pytest.raises(ChecksInvalid, match=r"checks\[0\]\.expect\.approval"):
        load_checks(path)
