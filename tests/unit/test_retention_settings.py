"""The retention policy's configuration: how it is written, and what a mistake in it says."""

from __future__ import annotations

import json
import os
from datetime import UTC, datetime
from pathlib import Path

import pytest

from aios.errors import SettingsInvalid
from aios.memory.retention import finished_runs_query
from aios.settings import RetentionPolicy, RunRetentionRule, load_settings


@pytest.fixture(autouse=True)
def no_aios_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """Each test states its own configuration: the caller's AIOS_* and aios.toml stay out."""
    for variable in [name for name in os.environ if name.startswith("AIOS_")]:
        monkeypatch.delenv(variable)
    monkeypatch.chdir(tmp_path)


def test_no_policy_keeps_everything() -> None:
    assert load_settings().retention.empty


def test_a_policy_in_aios_toml(tmp_path: Path) -> None:
    (tmp_path / "aios.toml").write_text(
        """
[[retention.memories]]
agent = "refund-desk"
kind = "note"
keep_days = 90
then = "archive"

[[retention.memories]]
keep_days = 365
then = "delete"

[[retention.runs]]
keep_days = 30
"""
    )
    policy = load_settings().retention
    assert [(r.agent, r.kind, r.keep_days, r.then) for r in policy.memories] == [
        ("refund-desk", "note", 90, "archive"),
        (None, None, 365, "delete"),
    ]
    assert [(r.agent, r.keep_days, r.then) for r in policy.runs] == [(None, 30, "delete")]


def test_a_policy_in_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AIOS_RETENTION", json.dumps({"runs": [{"agent": "desk", "keep_days": 0.5}]}))
    assert load_settings().retention.runs == [RunRetentionRule(agent="desk", keep_days=0.5)]


@pytest.mark.parametrize(
    ("policy", "expected"),
    [
        (
            {"memories": [{"kind": "note", "keep_days": -1, "then": "archive"}]},
            "AIOS_RETENTION: memories[0].keep_days: Input should be greater than or equal to 0",
        ),
        (
            {"memories": [{"keep_days": 1, "then": "shred"}]},
            "AIOS_RETENTION: memories[0].then: Input should be 'archive' or 'delete'",
        ),
        (
            {"memories": [{"kind": "note", "then": "delete"}]},
            "AIOS_RETENTION: memories[0].keep_days: Field required",
        ),
        (
            {"runs": [{"keep_days": 1, "agnet": "desk"}]},
            "AIOS_RETENTION: runs[0].agnet: Extra inputs are not permitted",
        ),
        (
            {"runs": [{"keep_days": 1, "then": "archive"}]},
            "AIOS_RETENTION: runs[0].then: Input should be 'delete'",
        ),
        ({"memory": []}, "AIOS_RETENTION: memory: Extra inputs are not permitted"),
        (
            {"runs": [{"keep_days": 30}, {"agent": "desk", "keep_days": 1}]},
            "AIOS_RETENTION: runs[1] can never apply: runs[0] comes first",
        ),
        (
            {
                "memories": [
                    {"kind": "note", "keep_days": 30, "then": "archive"},
                    {"agent": "desk", "kind": "note", "keep_days": 1, "then": "delete"},
                ]
            },
            "AIOS_RETENTION: memories[1] can never apply: memories[0] comes first",
        ),
    ],
)
def test_a_bad_policy_names_the_variable_and_the_field(
    monkeypatch: pytest.MonkeyPatch, policy: dict[str, object], expected: str
) -> None:
    monkeypatch.setenv("AIOS_RETENTION", json.dumps(policy))
    with pytest.raises(SettingsInvalid) as caught:
        load_settings()
    assert expected in str(caught.value)


def test_a_policy_that_is_not_json_says_so(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AIOS_RETENTION", "memories: keep 30 days")
    with pytest.raises(SettingsInvalid) as caught:
        load_settings()
    assert "AIOS_RETENTION: expected JSON" in str(caught.value)


def test_a_bad_policy_in_aios_toml_names_the_field(tmp_path: Path) -> None:
    (tmp_path / "aios.toml").write_text('[[retention.runs]]\nkeep_days = "a month"\n')
    with pytest.raises(SettingsInvalid) as caught:
        load_settings()
    assert "runs[0].keep_days: Input should be a valid number" in str(caught.value)


def test_a_narrower_rule_first_is_fine() -> None:
    policy = RetentionPolicy.model_validate(
        {"runs": [{"agent": "desk", "keep_days": 1}, {"agent": "ops", "keep_days": 2}, {"keep_days": 30}]}
    )
    assert [rule.agent for rule in policy.runs] == ["desk", "ops", None]


def test_the_visibility_query_of_each_run_rule() -> None:
    rules = [RunRetentionRule(agent="desk", keep_days=1), RunRetentionRule(agent="o'brien", keep_days=2)]
    rules.append(RunRetentionRule(keep_days=30))
    before = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)
    base = "WorkflowType = 'AgentRun' AND ExecutionStatus != 'Running' AND CloseTime < '2026-01-02T03:04:05Z'"
    assert finished_runs_query(rules, 0, before) == base + " AND AiosAgent = 'desk'"
    assert finished_runs_query(rules, 1, before) == base + " AND AiosAgent = 'o\\'brien'"
    # The catch-all leaves the agents of earlier rules to those rules.
    assert (
        finished_runs_query(rules, 2, before)
        == base + " AND AiosAgent != 'desk' AND AiosAgent != 'o\\'brien'"
    )
