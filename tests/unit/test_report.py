"""What automation is worth: the manifest's `value:`, the report's arithmetic, `--since`."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml
from typer.testing import CliRunner

from aios.cli.main import app
from aios.errors import ManifestInvalid, ReportWindowInvalid
from aios.governance.manifests import load_manifest
from aios.models.manifest import AgentManifest, ValueSpec
from aios.report.figures import Tally, agent_value, minutes_saved, total
from aios.report.ledger import AUTOMATIC_ACTORS
from aios.report.window import parse_since
from workflows.approval_gate import EXPIRED_BY

SHIPPED = Path(__file__).resolve().parents[2] / "agents"
NOW = datetime(2026, 12, 8, 12, 0, tzinfo=UTC)


def desk_with_value(value: object) -> dict[str, Any]:
    content: dict[str, Any] = yaml.safe_load((SHIPPED / "refund-desk.yaml").read_text())
    content["value"] = value
    return content


def load_error(tmp_path: Path, content: dict[str, Any]) -> str:
    path = tmp_path / "refund-desk.yaml"
    path.write_text(yaml.safe_dump(content, sort_keys=False))
    with pytest.raises(ManifestInvalid) as caught:
        load_manifest(path)
    return str(caught.value)


# -- the manifest's value: ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (
            {"minutes_saved_per_run": -1},
            "value.minutes_saved_per_run: Input should be greater than or equal to 0 (got -1)",
        ),
        (
            {"minutes_saved_per_action": {"send_reply": -2}},
            "value.minutes_saved_per_action.send_reply: Input should be greater than or equal to 0",
        ),
        (
            {"minutes_saved_per_action": {"send_mail": 2}},
            "value.minutes_saved_per_action.send_mail: not one of the actions: issue_refund, send_reply",
        ),
        (
            {"minutes_saved_per_action": {"reverse_refund": 2}},
            "value.minutes_saved_per_action.reverse_refund: a compensation_only action only undoes work",
        ),
        (
            {"minutes_saved": 5},
            "value.minutes_saved: not a known field; known fields: minutes_saved_per_action, "
            "minutes_saved_per_run",
        ),
    ],
)
def test_a_bad_value_section_names_its_field(tmp_path: Path, value: object, expected: str) -> None:
    message = load_error(tmp_path, desk_with_value(value))
    assert message.startswith(f"{tmp_path / 'refund-desk.yaml'}: ")
    assert expected in message
    assert len(message.splitlines()) == 1


def test_value_leaves_the_version_unchanged_set_or_not() -> None:
    raw = {
        "name": "desk",
        "actions": {"notify": {"connector": "noop", "risk": "low"}},
        "policy": {"approvers": ["alice"]},
    }
    # The version this manifest had before `value:` existed (test_decision_links pins it too).
    assert AgentManifest.model_validate(raw).version == "609cc3b24c01"
    valued = {**raw, "value": {"minutes_saved_per_run": 5, "minutes_saved_per_action": {"notify": 1}}}
    assert AgentManifest.model_validate(valued).version == "609cc3b24c01"


def test_the_shipped_refund_desk_declares_its_value() -> None:
    desk = load_manifest(SHIPPED / "refund-desk.yaml")
    assert desk.value is not None
    assert desk.value.minutes_saved_per_run > 0
    assert set(desk.value.minutes_saved_per_action) <= set(desk.proposable_actions())


# -- the arithmetic -----------------------------------------------------------------------

VALUE = ValueSpec(minutes_saved_per_run=10, minutes_saved_per_action={"send": 3, "lookup": 0.5})


def test_completed_runs_save_their_minutes_and_each_executed_step_its_own() -> None:
    tally = Tally(
        agent="a", runs=5, completed=4, compensated=1, executed={"send": 4, "lookup": 6, "other": 9}
    )
    assert minutes_saved(tally, VALUE) == 4 * 10 + 4 * 3 + 6 * 0.5


def test_an_agent_without_value_saves_nothing_but_its_touches_still_cost() -> None:
    tally = Tally(agent="a", runs=2, completed=2, approvals=1, resumes=1, resolutions=1)
    row = agent_value(tally, None, minutes_per_touch=2.5)
    assert (row.minutes_saved_gross, row.touches, row.minutes_touched) == (0, 3, 7.5)
    assert row.minutes_saved_net == -7.5
    assert not row.value_declared


def test_a_row_counts_outcomes_touches_and_net_minutes() -> None:
    tally = Tally(
        agent="a", runs=4, completed=2, compensated=1, tokens=900, cost=0.02, approvals=3, resumes=1
    )
    row = agent_value(tally, VALUE, minutes_per_touch=2)
    assert (row.runs, row.completed, row.compensated, row.other) == (4, 2, 1, 1)
    assert (row.touches, row.touches_per_run) == (4, 1.0)
    assert (row.minutes_saved_gross, row.minutes_touched, row.minutes_saved_net) == (20, 8, 12)
    assert (row.tokens, row.cost, row.value_declared) == (900, 0.02, True)


def test_touches_per_run_of_no_runs_is_zero() -> None:
    assert agent_value(Tally(agent="idle"), VALUE, minutes_per_touch=2).touches_per_run == 0


def test_the_total_sums_the_rows() -> None:
    rows = [
        agent_value(Tally(agent="a", runs=2, completed=2, approvals=2, tokens=5), VALUE, minutes_per_touch=2),
        agent_value(Tally(agent="b", runs=2, compensated=1, resumes=2, cost=0.5), None, minutes_per_touch=2),
    ]
    summed = total(rows, minutes_per_touch=2)
    assert (summed.agent, summed.runs, summed.completed, summed.compensated, summed.other) == (
        "total",
        4,
        2,
        1,
        1,
    )
    assert (summed.approvals, summed.resumes, summed.touches, summed.touches_per_run) == (2, 2, 4, 1.0)
    assert summed.minutes_saved_gross == rows[0].minutes_saved_gross + rows[1].minutes_saved_gross
    assert summed.minutes_saved_net == summed.minutes_saved_gross - 4 * 2
    assert (summed.tokens, summed.cost, summed.value_declared) == (5, 0.5, False)


def test_an_approval_sla_default_is_not_a_person() -> None:
    assert EXPIRED_BY in AUTOMATIC_ACTORS


# -- --since ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("30m", NOW - timedelta(minutes=30)),
        ("12h", NOW - timedelta(hours=12)),
        ("7d", NOW - timedelta(days=7)),
        (" 2W ", NOW - timedelta(weeks=2)),
        ("2026-12-01", datetime(2026, 12, 1, tzinfo=UTC)),
        ("2026-12-01T08:30", datetime(2026, 12, 1, 8, 30, tzinfo=UTC)),
        ("2026-12-01T08:30+02:00", datetime(2026, 12, 1, 6, 30, tzinfo=UTC)),
    ],
)
def test_since_reads_spans_dates_and_times(text: str, expected: datetime) -> None:
    assert parse_since(text, now=NOW) == expected


@pytest.mark.parametrize("text", ["yesterday", "7", "7y", "-7d", "2026-13-01", ""])
def test_a_bad_since_says_the_accepted_forms(text: str) -> None:
    with pytest.raises(ReportWindowInvalid) as caught:
        parse_since(text, now=NOW)
    assert f"--since {text!r} is not a time: use a span back from now (30m, 12h, 7d, 2w)" in str(caught.value)
    assert caught.value.exit_code == 2


def test_the_command_refuses_a_bad_since_in_one_line_with_exit_2() -> None:
    result = CliRunner().invoke(app, ["report", "--since", "last week"], env={"COLUMNS": "400"})
    assert result.exit_code == 2
    lines = result.output.strip().splitlines()
    assert len(lines) == 1
    assert lines[0].startswith("error: --since 'last week' is not a time: use a span back from now")
